"""A recorded desktop episode read back for training and evaluation: frames (as recorded and resized)
and the per-frame actions. Shapes: frames ``(T, H, W, 3)`` uint8; pointers ``(T, 2)`` ``(x, y)`` pixels.

Episodes collected since 2026-12 store cursor-free framebuffers (manifest ``"cursor_at_read": true``)
and the cursor is drawn here; by default after resizing, at :data:`READ_CURSOR_SCALE` of the read size: a model
at 256x192 then sees (and must draw) a crisp 12x19 px arrow that the cursor instrument finds exactly,
not the 3x5 px smudge a screen-size arrow becomes when a 1024x768 frame is shrunk. Older episodes
have the cursor drawn in at screen size; they read as before (and their cursor scales with the frame).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neuralcomputer.data.dataset import read_clip_payload
from neuralcomputer.data.desktop.actions import FrameActions, read_actions
from neuralcomputer.data.desktop.cursor import CursorSprite, composite_cursor, cursor_sprite
from neuralcomputer.data.torch_dataset import resize_frames
from neuralcomputer.errors import NCError

READ_CURSOR_SCALE = 1.0  # the arrow's scale at the read size (1.0: ~12x19 px), whatever that size is


@dataclass
class DesktopClip:
    """One episode's distinct framebuffers at a read size, and where the cursor is in each frame."""

    framebuffers: np.ndarray  # (U, H, W, 3) uint8 at the read size; cursor-free unless cursor_drawn
    index: np.ndarray         # (T,) int: frame t shows framebuffers[index[t]]
    pointer: np.ndarray       # (T, 2) float64: the pointer at the read size (hotspot, pixels)
    cursor_drawn: bool        # an older recording: the cursor is already in the framebuffers
    cursor_scale: float       # the arrow's scale in the frames as read (what the instrument looks for)

    def __len__(self) -> int:
        return len(self.index)

    @property
    def sprite(self) -> CursorSprite:
        """The arrow as it appears in this clip's frames at the read size."""
        return cursor_sprite(self.cursor_scale)

    def frames(self, ids: np.ndarray | list[int] | None = None, cursor: bool = True) -> np.ndarray:
        """Frames ``ids`` (default all) ``(N, H, W, 3)`` uint8, the cursor drawn in (``cursor=False``: the
        bare framebuffer, only for clips stored cursor-free)."""
        ids = np.arange(len(self)) if ids is None else np.asarray(ids, dtype=np.int64)
        out = self.framebuffers[self.index[ids]]
        if self.cursor_drawn or not cursor:
            return out
        sprite = self.sprite
        return np.stack([composite_cursor(f, *self.pointer[t], sprite) for f, t in zip(out, ids, strict=True)])


def read_desktop_clip(path: str | Path, size: tuple[int, int] | None = None, cursor: str = "read") -> DesktopClip:
    """A desktop clip payload read at ``size`` = (H, W) (default: as recorded).

    ``cursor="read"``: the arrow is drawn after resizing, at :data:`READ_CURSOR_SCALE` (DeskDelta, the
    targets report). ``cursor="screen"``: drawn at the recorded size and shrunk with the frame, as
    clips were stored before 2026-12 (the GUIWorld DiT models were trained on that view; their data
    reads the same either way). Clips stored with the cursor drawn in read as stored.
    """
    return desktop_clip(read_clip_payload(Path(path)), size, cursor)


def desktop_clip(payload: dict[str, np.ndarray], size: tuple[int, int] | None = None, cursor: str = "read"
                 ) -> DesktopClip:
    """:func:`read_desktop_clip` from a payload already read (``read_clip_payload``): one decode serves
    several read sizes or cursor views."""
    if cursor not in ("read", "screen"):
        raise NCError(f"cursor={cursor!r}: expected read or screen")
    unique, index = payload["unique_frames"], payload["frame_index"]
    h0, w0 = unique.shape[1:3]
    h, w = size or (h0, w0)
    drawn = "cursor_drawn" not in payload or bool(np.any(payload["cursor_drawn"]))
    screen_xy = np.asarray(payload["cursor"][:, :2], np.float64)
    if not drawn and cursor == "screen":  # draw at screen size, one frame per distinct (framebuffer, pointer)
        keys: dict[tuple[int, int, int], int] = {}
        new_index = np.asarray([keys.setdefault((int(b), int(x), int(y)), len(keys))
                                for b, (x, y) in zip(index, screen_xy, strict=True)], np.int32)
        sprite = cursor_sprite()
        unique = np.stack([composite_cursor(unique[b], x, y, sprite) for (b, x, y) in keys])
        index, drawn = new_index, True
    resized = unique if (h, w) == (h0, w0) else resize_frames(unique, h, w)
    return DesktopClip(resized, index, screen_xy * (w / w0, h / h0), drawn, w / w0 if drawn else READ_CURSOR_SCALE)


def episode_cursor_scale(record: dict, width: int) -> float:
    """The arrow's scale in an episode's frames read ``width`` px wide (see :class:`DesktopClip`)."""
    return READ_CURSOR_SCALE if record.get("cursor_at_read") else width / float(record["width"])


def load_episode(root: str | Path, record: dict, frames: int, size: tuple[int, int], cursor: str = "screen"
                 ) -> tuple[np.ndarray, np.ndarray, list[FrameActions]]:
    """The first ``frames`` frames of a desktop episode and their action records.

    Returns ``(recorded, resized, actions)``: frames ``(T, H0, W0, 3)`` as recorded, the same resized to
    ``size`` = (H, W), and ``T`` :class:`FrameActions` (T = ``frames`` or the episode's length). Both
    show the cursor, drawn as ``cursor`` says (see :func:`read_desktop_clip`; the recorded frames at
    screen size have it at scale 1 either way).
    """
    root = Path(root)
    actions = read_actions(root / record["actions"], float(record["fps"]))[:frames]
    ids = np.arange(min(frames, len(actions)))
    payload = read_clip_payload(root / record["path"])  # decoded once for both sizes
    return desktop_clip(payload).frames(ids), desktop_clip(payload, size, cursor).frames(ids), actions


def load_bare_episode(root: str | Path, record: dict, frames: int, size: tuple[int, int]
                      ) -> tuple[np.ndarray, np.ndarray, list[FrameActions]]:
    """A cursor-free episode (``cursor_at_read``) at ``size`` = (H, W): its framebuffers ``(T, H, W, 3)``
    without the arrow (what DeskDelta rolls forward), the same with the arrow drawn at read size, and
    the ``T`` :class:`FrameActions`."""
    root = Path(root)
    actions = read_actions(root / record["actions"], float(record["fps"]))[:frames]
    ids = np.arange(min(frames, len(actions)))
    clip = read_desktop_clip(root / record["path"], size)
    return clip.frames(ids, cursor=False), clip.frames(ids), actions
