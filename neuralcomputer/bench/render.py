"""Benchmarks behind `ncomp bench`: each yields dicts, printed as one JSON line per figure."""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from neuralcomputer.data.terminal.asciicast import read_cast
from neuralcomputer.data.terminal.emulator import Terminal
from neuralcomputer.data.terminal.render import FrameRenderer, GlyphAtlas
from neuralcomputer.errors import NCError

_DEFAULT_CAST = "sysid__rs-env__doc__demo.cast"  # a real 80x24 recording (BSD-3), 525 events


def default_cast() -> Path:
    """The benchmark's default recording: a real 80x24 cast from ../shared, else a fresh recording."""
    from neuralcomputer.data.terminal.build import real_casts_dir

    root = real_casts_dir()
    if (root / _DEFAULT_CAST).is_file():
        return root / _DEFAULT_CAST
    from neuralcomputer.data.terminal.recorder import record_many

    out = Path("demo-out") / "bench-casts"
    record_many("interactive", 1, 0, out, progress=False)
    casts = sorted(out.glob("*.cast"))
    if not casts:
        raise NCError("no recording to benchmark: pass --cast")
    return casts[0]


class NaiveRenderer:
    """Baseline: a Pillow ``rectangle`` + ``text`` call per cell, every frame (no caching)."""

    def __init__(self, renderer: FrameRenderer) -> None:
        self.r = renderer
        self.atlas: GlyphAtlas = renderer.atlas

    def render(self, terminal: Terminal) -> np.ndarray:
        ch, cw = self.r.cell_size
        theme = self.r.theme
        image = Image.new("RGB", (terminal.cols * cw, terminal.rows * ch), theme.background)
        draw = ImageDraw.Draw(image)
        for y in range(terminal.rows):
            line = terminal.screen.buffer[y]
            for x in range(terminal.cols):
                cell = line[x]
                fg = self.r._color(cell.fg, theme.foreground)
                bg = self.r._color(cell.bg, theme.background)
                if cell.reverse:
                    fg, bg = bg, fg
                if bg != theme.background:
                    draw.rectangle((x * cw, y * ch, (x + 1) * cw - 1, (y + 1) * ch - 1), fill=bg)
                draw.text((x * cw, y * ch), cell.data or " ", fill=fg, font=self.atlas.fonts[cell.bold])
        return np.asarray(image)


def _frame_states(path: Path, fps: int) -> tuple[Terminal, list[tuple[int, str]]]:
    """Events grouped by the 1/fps frame they precede: [(frame number, output data), ...]."""
    header, events = read_cast(path)
    grouped = []
    for e in events:
        if e.code == "o":
            grouped.append((int(e.time * fps), e.data))
    return Terminal(header.width, header.height), grouped


def _replay(path: Path, fps: int, render, max_frames: int | None = None) -> tuple[int, float, float]:
    """Feed events and render one frame per 1/fps tick. Returns (frames, render seconds, emulate seconds)."""
    terminal, grouped = _frame_states(path, fps)
    render_s = emulate_s = 0.0
    frames = 0
    i = 0
    last_frame = grouped[-1][0] + 1 if grouped else 1
    for tick in range(last_frame):
        t0 = time.perf_counter()
        while i < len(grouped) and grouped[i][0] <= tick:
            terminal.feed(grouped[i][1])
            i += 1
        t1 = time.perf_counter()
        render(terminal)
        t2 = time.perf_counter()
        emulate_s += t1 - t0
        render_s += t2 - t1
        frames += 1
        if max_frames is not None and frames >= max_frames:
            break
    return frames, render_s, emulate_s


def bench_render(cast: Path | None = None, *, fps: int = 15, font_size: int = 13,
                 naive_frames: int = 60) -> Iterator[dict]:
    """Frames/s on one core: atlas renderer (incremental and full redraw) vs the naive baseline."""
    try:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # "per core": one CPU only
        pinned = True
    except (AttributeError, OSError):
        pinned = False
    path = Path(cast) if cast else default_cast()
    header, _ = read_cast(path)
    common = {"cast": path.name, "grid": f"{header.width}x{header.height}", "font_px": font_size,
              "fps_sampled": fps, "pinned_to_one_core": pinned}
    renderer = FrameRenderer(header.width, header.height, font_size=font_size)
    changed = {"frames": 0, "seconds": 0.0}

    def incremental(terminal: Terminal) -> np.ndarray:
        t0 = time.perf_counter()
        frame = renderer.render(terminal)
        if renderer.changed:
            changed["frames"] += 1
            changed["seconds"] += time.perf_counter() - t0
        return frame

    frames, render_s, emulate_s = _replay(path, fps, incremental)
    atlas_fps = frames / render_s
    yield {"figure": "render_fps", "renderer": "atlas-incremental", "frames": frames,
           "fps": round(atlas_fps, 1), "frame_px": list(renderer.frame_shape[:2]), **common}
    # Most frames of a recording repeat the previous screen; this is the rate on those that don't.
    yield {"figure": "render_fps", "renderer": "atlas-incremental-changed-frames-only",
           "frames": changed["frames"], "fps": round(changed["frames"] / max(changed["seconds"], 1e-9), 1), **common}
    yield {"figure": "emulate_fps", "frames": frames, "fps": round(frames / emulate_s, 1), **common}
    yield {"figure": "end_to_end_fps", "frames": frames, "fps": round(frames / (render_s + emulate_s), 1), **common}

    full = FrameRenderer(header.width, header.height, font_size=font_size)

    def full_redraw(terminal: Terminal) -> np.ndarray:
        full.invalidate()
        return full.render(terminal)

    frames_f, render_f, _ = _replay(path, fps, full_redraw)
    full_fps = frames_f / render_f
    yield {"figure": "render_fps", "renderer": "atlas-full-redraw", "frames": frames_f,
           "fps": round(full_fps, 1), **common}

    naive = NaiveRenderer(renderer)
    frames_n, render_n, _ = _replay(path, fps, naive.render, max_frames=naive_frames)
    naive_fps = frames_n / render_n
    yield {"figure": "render_fps", "renderer": "naive-pillow-per-cell", "frames": frames_n,
           "fps": round(naive_fps, 2), **common}
    yield {"figure": "speedup_vs_naive", "atlas_incremental": round(atlas_fps / naive_fps, 1),
           "atlas_full_redraw": round(full_fps / naive_fps, 1), **common}
    tiles = len(renderer._tile_of)
    ch, cw = renderer.cell_size
    yield {"figure": "memory", "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
           "atlas_tiles": tiles, "atlas_mb": round(renderer._tiles.nbytes / 2**20, 2),
           "tile_bytes": ch * cw * 3, "frame_mb": round(np.prod(renderer.frame_shape) / 2**20, 3), **common}
