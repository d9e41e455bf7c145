"""Shared pieces of the CLIGen model and training tests: a tiny real dataset and tiny configs."""

from __future__ import annotations

from pathlib import Path

from neuralcomputer.config import apply_overrides, preset_config
from neuralcomputer.data.dataset import load_manifest, write_manifest
from neuralcomputer.data.terminal.build import render_dataset
from tests.helpers import make_cast

# 40x8 terminal at 13 px: 320x136 frames, a 8x40 cell grid.
TINY = ["height=136", "width=320", "num_frames=3", "frame_stride=5", "num_layers=2", "num_attention_heads=2",
        "attention_head_dim=24", "ffn_dim=96", "freq_dim=32", "text_dim=32", "layers=1", "heads=2",
        "val_clips=2", "val_steps=2", "log_every=1", "sample_steps=4"]


def make_tiny_dataset(root: Path, sessions: int = 4, val: int = 1) -> Path:
    """Render ``sessions`` short real-terminal-like casts; the last ``val`` sessions go to the val split."""
    casts = root / "casts"
    casts.mkdir(parents=True, exist_ok=True)
    for n in range(sessions):
        events = [(0.0, "o", "user@ncomp:~$ ")]
        t = 0.2
        for ch in f"echo run{n}":
            events.append((t, "o", ch))
            t += 0.1
        events.append((t, "o", f"\r\nrun{n}\r\n" + "".join(f"line {i} of output {n}\r\n" for i in range(3))
                       + "user@ncomp:~$ "))
        make_cast(casts / f"s{n}.cast", events, cols=40, rows=8)
    ds = root / "ds"
    render_dataset([casts], ds, progress=False)
    records = load_manifest(ds)
    val_sessions = sorted({r["session"] for r in records})[-val:] if val else []
    for r in records:
        r["split"] = "val" if r["session"] in val_sessions else "train"
    write_manifest(ds / "manifest.jsonl", records)
    return ds


def tiny_config(preset: str = "cligen-tiny", extra: list[str] | None = None) -> dict:
    return apply_overrides(preset_config(preset), TINY + (extra or []))
