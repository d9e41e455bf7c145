"""A small synthetic desktop dataset for GUIWorld model tests (no X server needed).

A grey "desktop" with a panel; the pointer wanders along straight segments and the cursor sprite is
composited at it, as the collector does; a left click toggles a blue "window" at a fixed place.
The dynamics depend on the actions only, so a model that reads its actions can learn them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from neuralcomputer.config import apply_overrides, preset_config
from neuralcomputer.data.dataset import clip_record, write_clip_payload, write_manifest
from neuralcomputer.data.desktop.actions import FrameActions, action_times, write_actions
from neuralcomputer.data.desktop.cursor import composite_cursor, cursor_sprite

# guiworld-tiny shrunk to seconds per step (sizes match make_desktop_dataset's 128x96 screen / 2)
TINY_GUI = ["height=48", "width=64", "num_layers=2", "num_attention_heads=2", "attention_head_dim=16", "ffn_dim=64",
            "freq_dim=16", "text_dim=16", "latent_channels=8", "hidden=32", "context_frames=2", "val_clips=1",
            "val_frames=4", "log_every=1", "sample_steps=2", "octaves=4", "max_meta=2"]


def tiny_gui_config(extra: list[str] | None = None) -> dict:
    return apply_overrides(preset_config("guiworld-tiny"), TINY_GUI + (extra or []))


def _frame(width: int, height: int, window_open: bool, pointer: tuple[int, int], cursor: bool = True) -> np.ndarray:
    f = np.full((height, width, 3), 90, np.uint8)
    f[-8:] = (40, 40, 48)  # panel
    if window_open:
        f[20:60, 30:100] = (50, 90, 200)
        f[20:26, 30:100] = (220, 220, 220)  # title bar
    return composite_cursor(f, *pointer, cursor_sprite()) if cursor else f


def make_desktop_dataset(root: Path, episodes: int = 3, frames: int = 16, width: int = 128, height: int = 96,
                         val: int = 1, seed: int = 0, cursor_free: bool = False, period: int = 4) -> Path:
    """Write ``episodes`` synthetic desktop episodes as a dataset; the last ``val`` go to the val split.

    ``cursor_free``: stored as the collector stores them now (framebuffers without the arrow, which
    readers draw in), else with the arrow drawn in (the format of older recordings). A click every
    ``period`` frames toggles the window (an odd period: the screen 15 frames after a click differs)."""
    rng = np.random.default_rng(seed)
    ds = root / "desktop"
    records = []
    for e in range(episodes):
        pointer = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        open_ = False
        images, acts = [], []
        for f in range(frames):
            images.append(_frame(width, height, open_, pointer, cursor=not cursor_free))
            events, meta = [], []
            if f % period == period - 1:  # a click: toggles the window
                events = [{"type": "down", "button": 1}, {"type": "up", "button": 1}]
                meta = [{"type": "click", "x": pointer[0], "y": pointer[1], "button": 1, "count": 1}]
                open_ = not open_
            acts.append(FrameActions(f, f / 15, pointer, events, meta))
            nxt = (int(np.clip(pointer[0] + rng.integers(-12, 13), 0, width - 1)),
                   int(np.clip(pointer[1] + rng.integers(-9, 10), 0, height - 1)))
            acts[-1].events.insert(0, {"type": "move", "x": nxt[0], "y": nxt[1]})
            pointer = nxt
        clip_id = f"synthetic-{seed}-{e}"
        xy = np.asarray([a.pointer for a in acts], np.int16)
        extra = {"pointer": xy, "cursor_drawn": np.zeros(frames, np.uint8)} if cursor_free else None
        cursor = np.concatenate([xy, np.ones((frames, 1), np.int16)], axis=1) if cursor_free else np.zeros((frames, 3), np.int16)
        write_clip_payload(ds / "clips" / f"{clip_id}.npz", np.stack(images), np.arange(frames), [""] * frames,
                           cursor, extra=extra)
        write_actions(ds / "clips" / f"{clip_id}.actions.jsonl", acts)
        records.append(clip_record(
            id=clip_id, session=clip_id, source="synthetic", split="val" if e >= episodes - val else "train",
            variant="desktop", kind="desktop", policy="synthetic", fps=15, width=width, height=height, frames=frames,
            grid=None, captions={"semantic": "a synthetic desktop", "regular": "", "detailed": ""},
            path=f"clips/{clip_id}.npz", actions=f"clips/{clip_id}.actions.jsonl", action_times=action_times(acts),
            unique_frames=frames, **({"cursor_at_read": True} if cursor_free else {})))
    write_manifest(ds / "manifest.jsonl", records)
    return ds
