"""Cut a recording into fixed-length clips of rendered frames, with screen text and session context.

One streaming pass over the events: the emulator is advanced event by event and the screen is sampled
at ``k / fps`` seconds (after idle gaps are capped, as asciinema players do), so memory stays bounded
by one clip. Consecutive identical frames are stored once (``frames`` + ``frame_index``), which
keeps terminal clips small without losing a pixel.

Dimension letters: T frames in a clip, U unique frames, H, W pixels.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from neuralcomputer.data.terminal.asciicast import MAX_COLS, MAX_ROWS, CastHeader, CastReader
from neuralcomputer.data.terminal.emulator import Terminal
from neuralcomputer.data.terminal.render import FrameRenderer
from neuralcomputer.errors import CastError


@dataclass(frozen=True)
class ClipOptions:
    """How recordings become clips.

    Attributes:
        fps: frames per second of the clips (the paper: 15).
        clip_seconds: window length (the paper: ~5 s).
        font_size, theme, draw_cursor: rendering (see :class:`FrameRenderer`).
        max_idle: idle gaps longer than this are shortened to it (a header's smaller
            ``idle_time_limit`` wins), so clips show activity rather than minutes of a still screen.
        min_clip_seconds: a trailing partial window shorter than this is dropped.
        max_output_chars: guard against escape-sequence floods; a recording with more output is
            rejected with a clear error instead of burning hours of CPU.
    """

    fps: int = 15
    clip_seconds: float = 5.0
    font_size: int = 13
    theme: str = "dark"
    draw_cursor: bool = True
    max_idle: float = 2.0
    min_clip_seconds: float = 1.0
    max_output_chars: int = 64_000_000

    @property
    def clip_frames(self) -> int:
        return max(1, round(self.clip_seconds * self.fps))


@dataclass
class Command:
    """A command line the user entered (time in effective seconds from the start)."""

    time: float
    text: str
    intent: str = ""


@dataclass
class Clip:
    """One window of a recording, rendered.

    Attributes:
        index: position of the window in the recording (0, 1, ...).
        start: effective start time (seconds, after idle capping) of the first frame.
        frames: ``(U, H, W, 3)`` uint8 unique frames.
        frame_index: ``(T,)`` int32, frame t shows ``frames[frame_index[t]]``.
        texts: U screen texts (rows joined by newlines, trailing spaces removed).
        cursor: ``(T, 3)`` int16: cursor column, row, visible.
        grid: (cols, rows) of the terminal.
        commands: command lines entered during the window; ``intents`` step intents that started.
        unhandled, wrapped: emulator escapes not understood / lines auto-wrapped during the window.
        alt_screen_frames: frames shown while a full-screen program held the alternate screen.
    """

    index: int
    start: float
    frames: np.ndarray
    frame_index: np.ndarray
    texts: list[str]
    cursor: np.ndarray
    grid: tuple[int, int]
    commands: list[Command] = field(default_factory=list)
    intents: list[str] = field(default_factory=list)
    unhandled: int = 0
    wrapped: int = 0
    alt_screen_frames: int = 0

    @property
    def num_frames(self) -> int:
        return int(self.frame_index.shape[0])

    @property
    def changes(self) -> bool:
        """False when every frame is the same picture."""
        return len(self.frames) > 1

    def frame(self, t: int) -> np.ndarray:
        """Frame ``t`` as ``(H, W, 3)`` uint8."""
        return self.frames[self.frame_index[t]]

    def text(self, t: int) -> str:
        return self.texts[self.frame_index[t]]


_CSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_PROMPT = re.compile(r"^.*?(?:[$#%>❯»➜λ]|\]\$?)\s+")


def strip_prompt(line: str) -> str:
    """The command part of a shell line: everything after the last prompt sigil and its space."""
    match = _PROMPT.match(line)
    return line[match.end():].strip() if match else line.strip()


class _CommandTracker:
    """Finds command lines in a recording.

    With ``i`` events (our recorder, and ``asciinema rec --stdin``): Enter marks a command and the
    cursor row holds it. Without input (most public casts): typing shows as a run of tiny output
    events echoing a few characters; a newline right after such a run marks the command.
    """

    def __init__(self) -> None:
        self.has_input = False
        self.typed_run = 0

    def before_output(self, data: str, terminal: Terminal) -> str | None:
        if self.has_input:
            return None
        if data.startswith(("\r\n", "\n")) and self.typed_run >= 2:
            self.typed_run = 0
            return terminal.lines()[terminal.cursor().y]
        stripped = _CSI.sub("", data)
        self.typed_run = self.typed_run + 1 if 0 < len(stripped) <= 2 and stripped.isprintable() else 0
        return None

    def on_input(self, data: str, terminal: Terminal) -> str | None:
        self.has_input = True
        if "\r" in data or "\n" in data:
            return terminal.lines()[terminal.cursor().y]
        return None


class _ClipBuilder:
    """Collects frames of the current window; dedupes consecutive identical frames."""

    def __init__(self, index: int, start: float, grid: tuple[int, int]) -> None:
        self.index, self.start, self.grid = index, start, grid
        self.frames: list[np.ndarray] = []
        self.texts: list[str] = []
        self.frame_index: list[int] = []
        self.cursor: list[tuple[int, int, int]] = []
        self.commands: list[Command] = []
        self.intents: list[str] = []
        self.unhandled_at_start = 0
        self.wrapped_at_start = 0
        self.alt_frames = 0

    def add(self, frame: np.ndarray, changed: bool, text: str, terminal: Terminal) -> None:
        # Unchanged per the renderer, or redrawn into identical pixels: reuse the last frame.
        if self.frames and (not changed or np.array_equal(self.frames[-1], frame)):
            self.frame_index.append(len(self.frames) - 1)
        else:
            self.frames.append(frame.copy())
            self.texts.append(text)
            self.frame_index.append(len(self.frames) - 1)
        c = terminal.cursor()
        self.cursor.append((c.x, c.y, int(c.visible)))
        self.alt_frames += int(terminal.screen.in_alternate_screen)

    def __len__(self) -> int:
        return len(self.frame_index)

    def build(self, terminal: Terminal) -> Clip:
        return Clip(
            index=self.index, start=self.start, frames=np.stack(self.frames),
            frame_index=np.asarray(self.frame_index, dtype=np.int32), texts=self.texts,
            cursor=np.asarray(self.cursor, dtype=np.int16).reshape(-1, 3), grid=self.grid,
            commands=self.commands, intents=self.intents,
            unhandled=terminal.unhandled_count - self.unhandled_at_start,
            wrapped=terminal.screen.wrapped_lines - self.wrapped_at_start,
            alt_screen_frames=self.alt_frames,
        )


def _parse_resize(data: str) -> tuple[int, int]:
    cols, rows = data.split("x")
    return int(cols), int(rows)


def iter_clips(path: str | Path, options: ClipOptions = ClipOptions()) -> Iterator[Clip]:
    """Render a recording into consecutive clips.

    Args:
        path: an asciicast v1/v2/v3 file.
        options: fps, window length, font, theme, idle capping, flood guard.

    Yields:
        :class:`Clip` objects in time order, each ``options.clip_frames`` frames long except
        possibly the last (kept when at least ``min_clip_seconds`` long).

    Raises:
        CastError: the file is malformed, too large, or floods the emulator.
    """
    with CastReader(path) as reader:
        header = reader.header
        yield from _clips_from_events(path, header, iter(reader), options)


def session_steps(header: CastHeader) -> list[dict]:
    """The authored steps stored by our recorder in the header (empty for other recordings)."""
    meta = header.extra.get("x_neuralcomputer")
    if isinstance(meta, dict) and isinstance(meta.get("steps"), list):
        return [s for s in meta["steps"] if isinstance(s, dict)]
    return []


def _clips_from_events(path: str | Path, header: CastHeader, events, options: ClipOptions) -> Iterator[Clip]:
    fps = options.fps
    idle_cap = options.max_idle
    if header.idle_time_limit is not None and header.idle_time_limit > 0:
        idle_cap = min(idle_cap, header.idle_time_limit)
    terminal = Terminal(header.width, header.height)
    renderer = FrameRenderer(header.width, header.height, font_size=options.font_size,
                             theme=options.theme, draw_cursor=options.draw_cursor)
    steps = session_steps(header)
    marker_count = 0
    tracker = _CommandTracker()
    n = options.clip_frames
    min_frames = max(1, math.ceil(options.min_clip_seconds * fps))

    clip_index = 0
    frame_number = 0  # frames sampled since the start of the current grid segment
    segment_start = 0.0
    builder = _ClipBuilder(0, 0.0, (header.width, header.height))
    active_step: Command | None = None  # the authored step in progress (from ``m`` markers)
    last_time = 0.0
    effective = 0.0
    output_chars = 0

    def sample_until(t: float) -> Iterator[Clip]:
        nonlocal frame_number, clip_index, builder
        while segment_start + frame_number / fps <= t:
            frame = renderer.render(terminal)
            builder.add(frame, renderer.changed, renderer.text(), terminal)
            frame_number += 1
            if len(builder) == n:
                yield builder.build(terminal)
                clip_index += 1
                builder = _new_builder(clip_index, segment_start + frame_number / fps)

    def _new_builder(index: int, start: float) -> _ClipBuilder:
        b = _ClipBuilder(index, start, (terminal.cols, terminal.rows))
        b.unhandled_at_start = terminal.unhandled_count
        b.wrapped_at_start = terminal.screen.wrapped_lines
        if active_step is not None:
            # A step that began in an earlier window is still what the user is doing in this one.
            b.intents.append(active_step.intent)
            if active_step.text:
                b.commands.append(active_step)
        return b

    for event in events:
        gap = event.time - last_time
        last_time = event.time
        effective += min(gap, idle_cap) if gap > 0 else 0.0
        # Frames strictly before this event show the state before it.
        yield from sample_until(effective - 1e-9)
        if event.code == "o":
            output_chars += len(event.data)
            if output_chars > options.max_output_chars:
                raise CastError(path, None, f"more than {options.max_output_chars} characters of "
                                            "output (escape-sequence flood?); refusing to render")
            line = tracker.before_output(event.data, terminal)
            if line is not None and strip_prompt(line):
                builder.commands.append(Command(effective, strip_prompt(line)))
            try:
                terminal.feed(event.data)
            except Exception as exc:  # pyte can fail on hostile input; report it as ours
                raise CastError(path, None, f"emulator failed at t={event.time:.3f}s: {exc!r}") from exc
        elif event.code == "i":
            line = tracker.on_input(event.data, terminal)
            if line is not None and strip_prompt(line) and not steps:
                builder.commands.append(Command(effective, strip_prompt(line)))
        elif event.code == "m":
            step = steps[marker_count] if marker_count < len(steps) else {}
            marker_count += 1
            intent = str(step.get("intent") or event.data)
            builder.intents.append(intent)
            active_step = Command(effective, str(step.get("command") or ""), intent)
            if active_step.text:
                builder.commands.append(active_step)
        elif event.code == "r":
            cols, rows = _parse_resize(event.data)
            if not (0 < cols <= MAX_COLS and 0 < rows <= MAX_ROWS):
                raise CastError(path, None, f"resize to {cols}x{rows} is out of range")
            if (cols, rows) != (terminal.cols, terminal.rows):
                # Frames of one clip share one size: close the window, start a new segment.
                if len(builder) >= min_frames:
                    yield builder.build(terminal)
                    clip_index += 1
                terminal.resize(cols, rows)
                renderer = FrameRenderer(cols, rows, font_size=options.font_size,
                                         theme=options.theme, draw_cursor=options.draw_cursor)
                segment_start, frame_number = effective, 0
                builder = _new_builder(clip_index, effective)
    # Show the final state for a moment (a real player would hold it), then close the last window.
    yield from sample_until(effective + 1.0)
    if len(builder) >= min_frames:
        yield builder.build(terminal)
