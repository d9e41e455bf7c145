"""The one small interface evaluation, probes and reports use to drive any model, and stand-ins.

A model under evaluation is anything with a ``generate`` method (the CLIGen model of a later issue,
a ``NeuralComputer`` runtime, or a stand-in). The stand-ins here have known scores, so every
instrument is tested before any model exists:

* :class:`CopyFirstFrame` repeats the first frame (a "nothing happens" model);
* :class:`ReferenceOracle` returns the true clip for a known (first frame, caption) pair;
* :class:`CaptionRenderer` is a perfect *conditional renderer*: it draws exactly the literal text a
  detailed caption quotes, and computes nothing (the paper's reprompting finding, idealised);
* :class:`ArithmeticOracle` computes the answer of the expression the user typed;
* :class:`NoisyCopy` adds unseeded noise (a non-deterministic model, for the determinism probe).

Shapes: frames are ``(T, H, W, 3)`` uint8; a first frame is ``(H, W, 3)`` uint8.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from neuralcomputer.data.terminal.captions import ScreenChange, parse_detailed
from neuralcomputer.errors import NCError


@runtime_checkable
class ClipGenerator(Protocol):
    """Generates a clip from a first frame and a caption (the CLIGen task)."""

    def generate(self, first_frame: np.ndarray, caption: str, num_frames: int, seed: int) -> np.ndarray:
        """Return ``(num_frames, H, W, 3)`` uint8 frames whose frame 0 continues ``first_frame``."""
        ...


class CopyFirstFrame:
    """Repeats the first frame: scores what "nothing changes" scores."""

    def generate(self, first_frame: np.ndarray, caption: str, num_frames: int, seed: int) -> np.ndarray:
        return np.repeat(first_frame[None], num_frames, axis=0)


class NoisyCopy:
    """The first frame plus fresh, unseeded noise on every call: deterministic in nothing."""

    def __init__(self, amplitude: int = 8) -> None:
        self.amplitude = amplitude
        self._rng = np.random.default_rng()

    def generate(self, first_frame: np.ndarray, caption: str, num_frames: int, seed: int) -> np.ndarray:
        frames = np.repeat(first_frame[None].astype(np.int16), num_frames, axis=0)
        frames += self._rng.integers(-self.amplitude, self.amplitude + 1, size=frames.shape, dtype=np.int16)
        return np.clip(frames, 0, 255).astype(np.uint8)


def _key(first_frame: np.ndarray, caption: str) -> str:
    return hashlib.sha1(np.ascontiguousarray(first_frame).tobytes() + caption.encode()).hexdigest()


class ReferenceOracle:
    """Returns the reference clip whose first frame and caption match (ground truth, PSNR = inf).

    Args:
        dataset: a dataset directory; clips are indexed by (first frame, caption of ``tier``).
    """

    def __init__(self, dataset: str | Path, tier: str = "detailed") -> None:
        from neuralcomputer.data.dataset import load_manifest, read_clip_payload

        self._read = read_clip_payload
        # Index by (first frame, caption) -> payload path; frames are read again on demand, so a
        # large dataset is not held in memory.
        self._paths: dict[str, Path] = {}
        for record in load_manifest(dataset):
            path = Path(dataset) / record["path"]
            self._paths[_key(read_clip_payload(path)["frames"][0], record["captions"][tier])] = path

    def generate(self, first_frame: np.ndarray, caption: str, num_frames: int, seed: int) -> np.ndarray:
        path = self._paths.get(_key(first_frame, caption))
        if path is None:
            raise NCError("reference oracle: no reference clip with this first frame and caption")
        frames = self._read(path)["frames"]
        if len(frames) >= num_frames:
            return frames[:num_frames]
        return np.concatenate([frames, np.repeat(frames[-1:], num_frames - len(frames), axis=0)])


_TYPES = re.compile(r"The user types `([^`]*)`")


class _TerminalStandIn:
    """Shared machinery: read the first frame's screen, append lines, render the result."""

    def __init__(self, font_size: int = 13, theme: str = "dark") -> None:
        from neuralcomputer.eval.grid_ocr import GridOCR

        self.font_size, self.theme = font_size, theme
        self.reader = GridOCR(font_size=font_size, theme=theme)

    def _continue(self, first_frame: np.ndarray, new_lines: list[str], num_frames: int,
                  change: ScreenChange | None = None) -> np.ndarray:
        """Frames that show ``new_lines`` appended after the first frame's text, or, given a ``change``
        (a detailed caption's scroll and quoted lines), the first frame's text scrolled and pasted over."""
        from neuralcomputer.data.terminal.emulator import Terminal
        from neuralcomputer.data.terminal.render import FrameRenderer

        screen = self.reader.read(first_frame)
        rows, cols = self.reader.grid_shape(first_frame)
        lines = screen.split("\n")

        def draw(text_lines: list[str]) -> np.ndarray:
            while text_lines and not text_lines[-1].strip():
                text_lines = text_lines[:-1]
            terminal = Terminal(cols, rows)
            terminal.feed("\r\n".join(text_lines))
            return renderer.render(terminal).copy()

        renderer = FrameRenderer(cols, rows, font_size=self.font_size, theme=self.theme)
        frames = [draw(lines)]
        if change is not None:
            pasted = (lines[change.scroll:] + [""] * change.scroll)[:rows]
            pasted[change.row:change.row + len(change.lines)] = change.lines
            last = draw(pasted[:rows])
        else:
            kept = list(lines)
            while kept and not kept[-1].strip():
                kept.pop()
            last = draw(kept + new_lines)
        # the change appears a third of the way in, as a command's output would
        switch = max(1, num_frames // 3)
        out = np.stack(frames * switch + [last] * (num_frames - switch))[:num_frames]
        out[0] = first_frame  # frame 0 continues the given frame exactly
        return out


class CaptionRenderer(_TerminalStandIn):
    """Draws exactly what a detailed caption says (its scroll, its quoted lines where it places them);
    computes nothing."""

    def generate(self, first_frame: np.ndarray, caption: str, num_frames: int, seed: int) -> np.ndarray:
        return self._continue(first_frame, [], num_frames, parse_detailed(caption))


class ArithmeticOracle(_TerminalStandIn):
    """Computes the answer to the expression the caption says the user typed, and shows it."""

    def generate(self, first_frame: np.ndarray, caption: str, num_frames: int, seed: int) -> np.ndarray:
        from neuralcomputer.data.terminal.generators.arithmetic import evaluate

        match = _TYPES.search(caption)
        try:
            answer = evaluate(match.group(1)) if match else None
        except ValueError:
            answer = None
        return self._continue(first_frame, [answer, ">>> "] if answer else [], num_frames)


STAND_INS = {"copy-first-frame": CopyFirstFrame, "caption-renderer": CaptionRenderer,
             "arithmetic-oracle": ArithmeticOracle, "noisy-copy": NoisyCopy}
