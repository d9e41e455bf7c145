"""``ncomp bench collect``: desktop collection speed (frames grabbed on time, pointer px/frame and
meta-actions/s per policy, several workers at once) on real XFCE desktops.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from neuralcomputer.data.desktop.collect import collect_desktop, record_episode
from neuralcomputer.data.desktop.xsession import Desktop

# --------------------------------------------------------------------------------------------------
# Benchmark

def bench_collect(policies: Sequence[str] = ("random-slow", "random-fast"), seconds: float = 20.0,
                  size: tuple[int, int] = (1024, 768), fps: float = 15.0, workers: int = 2,
                  seed: int = 0) -> list[dict]:
    """Figures of desktop collection: raw capture rate, and per policy an episode's capture rate,
    dropped frames, pointer px/frame and actions/s; then ``workers`` episodes in parallel."""
    import tempfile

    figures: list[dict] = []
    with Desktop(*size) as desktop:
        n = 100
        t = time.monotonic()
        for _ in range(n):
            desktop.screenshot()
            desktop.pointer()
        figures.append({"figure": "grab+pointer frames/s (1 worker, idle desktop)", "size": f"{size[0]}x{size[1]}",
                        "value": round(n / (time.monotonic() - t), 1), "xfce_start_s": round(desktop.start_seconds, 2)})
    for name in policies:
        t = time.monotonic()
        ep = record_episode(name, seed, 0, seconds=seconds, fps=fps, size=size)
        cap = ep.capture
        span = cap.times[-1] - cap.times[0] if len(cap) > 1 else float("nan")
        figures.append({"figure": f"episode {name}", "size": f"{size[0]}x{size[1]}", "fps_target": fps,
                        "frames": len(cap), "captured_fps": round((len(cap) - 1) / span, 2), "dropped_frames": cap.dropped,
                        "px_per_frame": round(ep.px_per_frame, 2), "actions_per_s": round(ep.actions_per_s, 2),
                        "pointer_mismatches": len(ep.mismatches), "xfce_start_s": round(ep.start_seconds, 2),
                        "wall_s": round(time.monotonic() - t, 1)})
    if workers > 1:
        with tempfile.TemporaryDirectory() as tmp:
            s = collect_desktop(policies[-1], workers, seconds, tmp, workers=workers, fps=fps, size=size, seed=seed,
                                progress=False)
            from neuralcomputer.data.dataset import load_manifest

            records = load_manifest(tmp)
            figures.append({"figure": f"{workers} workers in parallel ({policies[-1]})", "size": f"{size[0]}x{size[1]}",
                            "episodes": len(records), "frames": s.frames, "dropped_frames": s.dropped_frames,
                            "captured_fps_per_worker": round(float(np.mean(
                                [r["frames"] / (r["frames"] + r["dropped_frames"]) * fps for r in records])), 2)
                            if records else None, "failed": len(s.failed), "wall_s": s.seconds})
    return figures
