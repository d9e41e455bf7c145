"""Write frames to an MP4 a person can watch (H.264 via the ffmpeg binary shipped by imageio-ffmpeg).

Training data stays lossless in ``.npz``; MP4 is for eyes only.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from neuralcomputer.errors import NCError


def write_mp4(path: str | Path, frames: Iterable[np.ndarray], fps: float, *, quality_crf: int = 12,
              lossless: bool = False) -> int:
    """Encode ``(H, W, 3)`` uint8 frames to ``path`` atomically. Returns the number of frames.

    Odd frame sizes are padded to even (yuv420p needs it) by repeating the edge. ``lossless``: RGB
    H.264 at qp 0 (``libx264rgb``), bit-exact muxing, so the same frames give a byte-identical file and
    decode to exactly the same pixels.
    """
    import imageio_ffmpeg

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".mp4")
    os.close(fd)
    count = 0
    writer = None
    try:
        for frame in frames:
            h, w = frame.shape[:2]
            if writer is None:
                size = (w + w % 2, h + h % 2)
                if lossless:
                    codec, pix_fmt = "libx264rgb", "rgb24"
                    params = ["-crf", "0", "-preset", "veryfast", "-threads", "1", "-fflags", "+bitexact",
                              "-flags:v", "+bitexact", "-map_metadata", "-1"]
                else:
                    codec, pix_fmt = "libx264", "yuv420p"
                    params = ["-crf", str(quality_crf), "-preset", "veryfast"]
                writer = imageio_ffmpeg.write_frames(tmp, size, fps=fps, codec=codec, pix_fmt_out=pix_fmt,
                                                     macro_block_size=1, output_params=params)
                writer.send(None)
            if (w + w % 2, h + h % 2) != size:
                raise NCError(f"{path}: frame {count} is {w}x{h}, expected {size[0]}x{size[1]} like the first")
            if w % 2 or h % 2:
                frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
            writer.send(np.ascontiguousarray(frame))
            count += 1
        if writer is None:
            raise NCError(f"{path}: no frames to write")
        writer.close()
        os.replace(tmp, path)
    except BaseException:
        if writer is not None:
            writer.close()
        Path(tmp).unlink(missing_ok=True)
        raise
    return count
