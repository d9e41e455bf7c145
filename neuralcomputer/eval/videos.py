"""Sets of videos to score: a dataset directory, or a folder of ``<id>.npz`` / ``<id>.mp4`` files.

Generated clips are paired with reference clips by id. Frames are ``(T, H, W, 3)`` uint8.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neuralcomputer.data.dataset import atomic_write_bytes, is_dataset, load_manifest, read_clip_payload
from neuralcomputer.errors import NCError


@dataclass
class VideoSet:
    """Clips addressable by id, loaded lazily.

    Attributes:
        root: the folder.
        records: id -> manifest record (datasets) or ``{"path": ...}`` (plain folders).
    """

    root: Path
    records: dict[str, dict]
    is_dataset: bool
    _last: tuple[str, dict] | None = None  # the last payload read: frames, text and arrays share it

    @classmethod
    def open(cls, root: str | Path) -> VideoSet:
        root = Path(root)
        if not root.is_dir():
            raise NCError(f"{root}: not a directory of videos or a dataset")
        if is_dataset(root):
            return cls(root, {r["id"]: r for r in load_manifest(root)}, True)
        records = {p.stem: {"path": p.name} for p in sorted(root.iterdir()) if p.suffix in (".npz", ".mp4")}
        if not records:
            raise NCError(f"{root}: no manifest.jsonl and no <id>.npz or <id>.mp4 files")
        return cls(root, records, False)

    def ids(self) -> list[str]:
        return list(self.records)

    def path(self, clip_id: str) -> Path:
        """The file that holds a clip."""
        return self.root / self.records[clip_id]["path"]

    def _payload(self, clip_id: str) -> dict:
        if self._last is None or self._last[0] != clip_id:
            path = self.path(clip_id)
            try:
                payload = read_clip_payload(path)
            except _UNREADABLE as exc:
                raise NCError(f"{path}: not a readable clip ({_why(exc)}); expected a clip payload written by "
                              "ncomp data render") from None
            self._last = (clip_id, payload)
        return self._last[1]

    def frames(self, clip_id: str) -> np.ndarray:
        """``(T, H, W, 3)`` uint8 frames of one clip; :class:`NCError` naming the file if it cannot be read."""
        path = self.path(clip_id)
        if self.is_dataset:
            return self._payload(clip_id)["frames"]
        if path.suffix == ".npz":
            try:  # numpy says "pickled data" for a file that is no archive, or EOFError for an empty one
                with np.load(path) as z:
                    if "frames" not in z:
                        raise NCError(f"{path}: expected an array named 'frames' (T, H, W, 3) uint8")
                    frames = z["frames"]
            except _UNREADABLE as exc:
                raise NCError(f"{path}: not a readable .npz ({_why(exc)}); expected an array 'frames' "
                              "(T, H, W, 3) uint8, as numpy.savez writes it") from None
        else:
            frames = read_mp4(path)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise NCError(f"{path}: frames must be (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
        return frames

    def array(self, clip_id: str, name: str) -> np.ndarray | None:
        """Another per-frame array of a dataset clip's payload (e.g. ``pointer`` (T, 2)), or None."""
        if not self.is_dataset:
            return None
        return self._payload(clip_id).get(name)

    def texts(self, clip_id: str) -> list[str] | None:
        """Ground-truth screen text per frame (datasets of terminal clips), else None."""
        if not self.is_dataset:
            return None
        return [str(t) for t in self._payload(clip_id)["text"]]


# What reading a damaged file raises: zipfile.BadZipFile and the numpy and ffmpeg errors are among these.
_UNREADABLE = (OSError, ValueError, EOFError, KeyError, RuntimeError, StopIteration, zipfile.BadZipFile)


def _why(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:160]


def read_mp4(path: str | Path) -> np.ndarray:
    """Decode an MP4 into ``(T, H, W, 3)`` uint8 (lossy source: fine for generated videos only)."""
    import imageio_ffmpeg

    try:
        reader = imageio_ffmpeg.read_frames(str(path))
        meta = next(reader)
        w, h = meta["size"]
        frames = [np.frombuffer(buf, np.uint8).reshape(h, w, 3) for buf in reader]
    except _UNREADABLE as exc:
        raise NCError(f"{path}: not a video ffmpeg can decode ({_why(exc)}); expected an MP4 of RGB frames") from None
    if not frames:
        raise NCError(f"{path}: no frames; expected an MP4 of RGB frames")
    return np.stack(frames)


def write_frames_npz(path: str | Path, frames: np.ndarray) -> None:
    """Store generated frames as ``<id>.npz`` with one array ``frames`` (lossless, atomic)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf, \
            zf.open("frames.npy", "w", force_zip64=True) as f:
        np.lib.format.write_array(f, np.ascontiguousarray(frames), allow_pickle=False)
    atomic_write_bytes(Path(path), buf.getvalue())
