"""MP4 previews of recordings and dataset clips, for people to watch."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from neuralcomputer.data.dataset import load_manifest, read_clip_payload
from neuralcomputer.data.terminal.clips import ClipOptions, iter_clips
from neuralcomputer.data.video import write_mp4
from neuralcomputer.errors import NCError


def cast_frames(path: str | Path, options: ClipOptions) -> Iterator[np.ndarray]:
    """Every frame of a recording at ``options.fps`` (idle gaps capped), in order."""
    for clip in iter_clips(path, options):
        for t in range(clip.num_frames):
            yield clip.frame(t)


def preview_cast(path: str | Path, out: str | Path, *, fps: int = 15, font_size: int = 13,
                 theme: str = "dark") -> int:
    """Render a whole recording to ``out`` (MP4). Returns the number of frames."""
    options = ClipOptions(fps=fps, font_size=font_size, theme=theme, min_clip_seconds=0.0)
    return write_mp4(out, cast_frames(path, options), fps)


def preview_clip(dataset: str | Path, out: str | Path, clip_id: str | None = None) -> int:
    """Write one clip of a dataset to ``out`` (MP4). Returns the number of frames."""
    records = load_manifest(dataset)
    record = next((r for r in records if clip_id in (None, r["id"])), None)
    if record is None:
        raise NCError(f"{dataset}: no clip with id {clip_id!r}")
    payload = read_clip_payload(Path(dataset) / record["path"])
    return write_mp4(out, iter(payload["frames"]), record["fps"])
