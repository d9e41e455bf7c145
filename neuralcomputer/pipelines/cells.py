"""Sampling CellGen, the cell-token CPU model of CLIGen: first frame + caption -> a clip.

1. Encode the first frame into tile ids (exact for known tiles).
2. Lay the caption out: the first frame scrolled as it says, its quoted characters where it places them.
3. Masked discrete diffusion: every cell of the last screen starts hidden; each of ``steps`` passes
   predicts all hidden cells and keeps the most confident share (the cosine schedule), the last pass
   keeps the rest. Choices are argmax, so the same inputs give the same frames (deterministic).
4. Compose the clip: frame ``t`` shows the last screen where ``t`` has reached the cell's switch
   frame and the first frame elsewhere; decode the tiles back to pixels.

Shapes: frames ``(T, H, W, 3)`` uint8; grids ``(R, C)`` tile ids.
"""

from __future__ import annotations

import json
import math
import weakref
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from neuralcomputer.data.terminal.captions import (
    RowTiming,
    ScreenChange,
    detailed_scope,
    parse_commands,
    parse_detailed,
    parse_regular,
    parse_timing,
    strip_timing,
)
from neuralcomputer.diffusion.sampling import deterministic_algorithms
from neuralcomputer.errors import NCError
from neuralcomputer.models.cellgen import (
    NO_CHAR,
    CellGenNet,
    check_grid,
    compose_frames,
    layout_change,
    masked_schedule,
    pad_bytes,
    row_windows,
)
from neuralcomputer.models.tile_codec import TileCodec


def required_chars(first: np.ndarray, shifted: np.ndarray, caption: str, chars: list[str]) -> np.ndarray:
    """``(R, C)`` the character the caption fixes in each cell ("" where it fixes none).

    A detailed caption determines the last screen's text (:func:`~neuralcomputer.data.terminal.captions.
    screen_change`): rows above its quote are the first frame scrolled, quoted rows are the quote (blank
    past a line's end), rows below are blank; a cut quote fixes the rows up to its last whole line. Style
    and the cursor stay the network's to choose."""
    return _required_chars(first, shifted, detailed_scope(caption), parse_detailed(caption), _char_table(chars))


def _char_table(chars: list[str]) -> np.ndarray:
    """``(N,)`` object array: the character each tile draws (a space for a tile that draws none)."""
    return np.array([c or " " for c in chars], dtype=object)


# per codec, its ``chars`` list and that list's table: sampling needs the table for every clip
_TILE_CHARS: weakref.WeakKeyDictionary[TileCodec, tuple[list[str], np.ndarray]] = weakref.WeakKeyDictionary()


def _tile_chars(codec: TileCodec) -> np.ndarray:
    """:func:`_char_table` of ``codec``, built once per codec (again only when ``extend`` grows it: that
    gives the codec a new ``chars`` list)."""
    cached = _TILE_CHARS.get(codec)
    if cached is None or cached[0] is not codec.chars or len(cached[1]) != len(codec.chars):
        cached = (codec.chars, _char_table(codec.chars))
        _TILE_CHARS[codec] = cached
    return cached[1]


def _required_chars(first: np.ndarray, shifted: np.ndarray, scope: str, change: ScreenChange,
                    table: np.ndarray) -> np.ndarray:
    """:func:`required_chars` from the caption's ``detailed_scope`` and ``parse_detailed`` and the tiles'
    :func:`_char_table`, so sampling parses the caption once for both the layout and this."""
    rows, cols = first.shape
    out = np.full((rows, cols), "", dtype=object)
    if not scope:
        return out
    out[: min(change.row, rows)] = table[shifted[: min(change.row, rows)]]
    for i, line in enumerate(change.lines):
        r = change.row + i
        if r >= rows:
            break
        out[r] = [line[c] if c < len(line) else " " for c in range(cols)]
    if scope == "whole":
        out[min(change.row + len(change.lines), rows):] = " "
        if not change.lines:  # the screen stays the same
            out[:] = table[shifted]
    return out


def _char_mask(required: np.ndarray, tile_chars: np.ndarray) -> torch.Tensor:
    """``(R, C, N)`` bool: the tiles a cell may take (those drawing its required character, or all);
    ``tile_chars``: the codec's :func:`_char_table`."""
    allowed = required[..., None] == tile_chars[None, None]
    free = (required == "")[..., None] | ~allowed.any(-1, keepdims=True)  # a character no tile draws: free
    return torch.from_numpy(allowed | free)


def isotonic(values: np.ndarray) -> np.ndarray:
    """The non-decreasing sequence closest to ``values`` in absolute error (pool adjacent violators with
    block medians: one cell predicted far too early or late does not drag its neighbours)."""
    blocks: list[list[float]] = []
    for v in values.astype(float).tolist():
        blocks.append([v])
        while len(blocks) > 1 and np.median(blocks[-2]) > np.median(blocks[-1]):
            last = blocks.pop()
            blocks[-1].extend(last)
    return np.concatenate([np.full(len(b), np.median(b)) for b in blocks]) if blocks else values.astype(float)


def coherent_switch(first: np.ndarray, final: np.ndarray, switch: np.ndarray) -> np.ndarray:
    """Per row, the switch frames of the cells that change made non-decreasing from left to right: a
    terminal writes a row in order (typing, or output printed at once), so a cell never takes its last
    value before the cells to its left do. Independent per-cell predictions leave holes in a line."""
    out = switch.copy()
    for r in range(first.shape[0]):
        cols = np.flatnonzero(first[r] != final[r])
        if len(cols) > 1:
            out[r, cols] = np.rint(isotonic(switch[r, cols])).astype(switch.dtype)
    return out


def cell_windows(first: np.ndarray, final: np.ndarray, window: np.ndarray, frames: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """``(R, C)`` first and last tile ids + ``(R, 2)`` row windows (:func:`~neuralcomputer.models.cellgen.
    row_windows`) -> ``(R, C)`` earliest and latest switch frame of each cell: its row's window for a
    changed cell of a timed row, ``[0, frames-1]`` elsewhere (the network's own guess)."""
    timed = (window[:, :1] < frames) & (first != final)
    return np.where(timed, window[:, :1], 0), np.where(timed, window[:, 1:], frames - 1)


def _typed_length(text: str, commands: tuple[str, ...]) -> int:
    """How many characters at the end of a row were typed: the longest command, or start of one (a clip
    can end mid-typing), that the row ends with after a space or from the row's start; 0 for none."""
    best = 0
    for command in commands:
        for k in range(min(len(command), len(text)), best, -1):
            if text.endswith(command[:k]) and (k == len(text) or text[-k - 1] == " "):
                best = k
                break
    return best


def typed_spans(timing: tuple[RowTiming, ...], change: ScreenChange, commands: tuple[str, ...], rows: int
                ) -> Iterator[tuple[RowTiming, int, int, int]]:
    """The timed rows (of ``rows``) whose quoted text ends with a typed command: ``(timing, row, start,
    end)``, the command's characters standing in columns ``start`` to ``end`` (exclusive)."""
    for t in timing:
        for r in range(t.first, min(t.last + 1, rows)):
            q = r - change.row
            if not 0 <= q < len(change.lines):
                continue
            text = change.lines[q].rstrip()
            typed = _typed_length(text, commands)
            if typed:
                yield t, r, len(text) - typed, len(text)


def typed_rows(first: np.ndarray, final: np.ndarray, switch: np.ndarray, timing: tuple[RowTiming, ...],
               change: ScreenChange, commands: tuple[str, ...], key_frames: float | None = None) -> np.ndarray:
    """Switch frames of the rows where the user types a command the caption names, placed as typing goes.

    A timed row whose quoted text ends with a command (or its start: the clip may end mid-typing) shows
    what stands before it (the prompt) when the row first changes, then the command's characters one by
    one up to the row's last change, and the cursor after them last. The caption gives the row's first
    and last frame, not each key's: with ``key_frames`` (frames per key, measured on the training data)
    the keys count back from the last one; without it, or with no prompt, they are spread evenly. Other
    rows keep ``switch``. Shapes: ``(R, C)`` tile ids and switch frames."""
    out = switch.copy()
    for t, r, start, end in typed_spans(timing, change, commands, first.shape[0]):
        cols = np.flatnonzero(first[r] != final[r])
        if t.end > t.start and len(cols):
            prompt, typed, after = cols[cols < start], cols[(cols >= start) & (cols < end)], cols[cols >= end]
            out[r, prompt] = t.start
            if len(typed) and len(prompt) and key_frames:
                # the last key lands at the row's last change; keys before it come key_frames apart (a
                # person pauses after the prompt, so counting from the end errs less than from the start)
                keys = t.end - key_frames * np.arange(len(typed))[::-1]
                out[r, typed] = np.maximum(np.rint(keys), t.start + 1).astype(out.dtype)
            elif len(typed):  # the first key follows the prompt by a step; with no prompt it is the row's start
                steps = np.linspace(t.start, t.end, len(typed) + (1 if len(prompt) else 0))
                out[r, typed] = np.rint(steps[-len(typed):]).astype(out.dtype)
            out[r, after] = t.end
    return out


@torch.no_grad()
def sample_grid(net: CellGenNet, codec: TileCodec, first: np.ndarray, caption: str, steps: int = 1,
                layout: bool = True, constrain: bool = True, fps: float | None = None,
                regular_hints: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(R, C)`` first-frame ids + caption -> ``(R, C)`` last-screen ids and ``(R, C)`` switch frames.

    ``constrain``: each cell chooses among the tiles that draw the character the caption fixes there
    (:func:`required_chars`), so the text it is told is drawn exactly; the network picks style and cursor.
    ``layout=False`` (an ablation): the caption reaches the network as bytes only, nothing laid out.
    ``fps``: the clip's frame rate, to read the caption's timing sentence (``Timing: line 3 from 0.40 s
    to 1.13 s``): each changed cell of a timed row switches within its row's interval (the median of the
    network's switch distribution over those frames); a network trained with ``timing_input`` also reads
    the windows. None: the network's timing alone. ``regular_hints``: a regular caption's commands and
    last line laid out where they most likely stand (a hint, never constrained)."""
    check_grid(*first.shape, net)
    data = caption.encode()
    if len(data) > net.max_text:
        raise NCError(f"caption is {len(data)} bytes; this model reads at most {net.max_text}")
    mask = None
    if layout:
        change = parse_detailed(caption)  # once: the layout and the text constraint both read it
        hints = parse_regular(caption, codec.text(first)) if regular_hints else None
        shifted, canvas = layout_change(first, change, codec.char_tile, hints)
        # the constraint places the caption's text: part of the layout (off with it in the ablation)
        if constrain:
            table = _tile_chars(codec)
            required = _required_chars(first, shifted, detailed_scope(caption), change, table)
            mask = _char_mask(required, table)[None]
    else:
        shifted, canvas = first, np.full_like(first, NO_CHAR)
    text, text_len = pad_bytes([data])
    frames = net.switch_classes
    timing = parse_timing(caption, fps) if fps and layout else ()
    window = torch.from_numpy(row_windows(timing, first.shape[0], frames))[None]
    f = torch.from_numpy(first.astype(np.int64))[None]
    s = torch.from_numpy(shifted.astype(np.int64))[None]
    c = torch.from_numpy(canvas.astype(np.int64))[None]
    target = torch.full_like(f, -1)
    cells = first.size
    switch_logits = None
    for k in range(steps):
        logits, switch_logits = net(f, s, c, target, text, text_len, window)
        if mask is not None:
            logits = logits.masked_fill(~mask, float("-inf"))
        probs = logits.softmax(-1)
        conf, choice = probs.max(-1)                                                          # (1, R, C)
        hidden = target < 0
        keep_hidden = 0 if k == steps - 1 else int(math.ceil(float(masked_schedule(torch.tensor((k + 1) / steps)))
                                                             * cells))
        reveal = int(hidden.sum()) - keep_hidden
        if reveal <= 0:
            continue
        conf = torch.where(hidden, conf, torch.full_like(conf, -1.0))
        order = conf.flatten().argsort(descending=True, stable=True)[:reveal]
        flat = target.flatten().clone()
        flat[order] = choice.flatten()[order]
        target = flat.view_as(target)
    # the median of the predicted switch frame, not its mode: it minimises the expected number of frames
    # a cell shows the wrong value (|predicted - true| frames), and typing speeds make the mode noisy
    final = target[0].numpy()
    if timing:
        lo, hi = (torch.from_numpy(a)[None, ..., None] for a in cell_windows(first, final, window[0].numpy(), frames))
        k = torch.arange(frames)
        switch_logits = switch_logits.masked_fill((k < lo) | (k > hi), float("-inf"))
    cdf = switch_logits.softmax(-1).cumsum(-1)
    switch = (cdf < 0.5).sum(-1).clamp(max=frames - 1)[0].numpy()
    return final, switch


def _number(value: object) -> float | None:
    """A config value that may still say ``"auto"`` (a model built, not trained): None then."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


class CellPipeline:
    """A trained CellGen model: the :class:`~neuralcomputer.eval.interface.ClipGenerator` contract.

    Args:
        net: the network; codec: its tile codec; config: the model directory's ``model`` config.
        steps: masked-diffusion passes per clip (default: the config's ``sample_steps``).
    """

    def __init__(self, net: CellGenNet, codec: TileCodec, config: dict, *, steps: int | None = None,
                 deterministic: bool = True) -> None:
        self.net = net.eval()
        self.model = net  # what the runtime reads: model.config, model.state_dict()
        net.config = config
        self.codec = codec
        self.config = config
        self.steps = int(steps or config["sample_steps"])
        self.sampler = "masked"
        self.deterministic = deterministic
        self.height, self.width = int(config["height"]), int(config["width"])
        self.fps = float(config["fps"])
        self.num_frames = int(config["num_frames"])
        self.stride = 1  # every frame of the clip is generated (no held samples)

    @property
    def clip_frames(self) -> int:
        """Frames of a whole clip at the data rate, the first (given) one included."""
        return self.num_frames

    def sample_frames(self, first_frames: np.ndarray, captions: list[str], seed: int) -> np.ndarray:
        """``(B, H, W, 3)`` first frames + B captions -> ``(B, T, H, W, 3)`` clips (the runtime's batch call)."""
        return np.stack([self.generate(f, c, self.num_frames, seed) for f, c in zip(first_frames, captions, strict=True)])

    @classmethod
    def load(cls, path: str | Path, *, steps: int | None = None, sampler: str | None = None,
             deterministic: bool = True, **_: object) -> CellPipeline:
        from safetensors.torch import load_file

        path = Path(path)
        config = json.loads((path / "config.json").read_text())["model"]
        codec = TileCodec.load(path)
        net = CellGenNet(len(codec), config["num_frames"], **config["net"])
        net.load_state_dict(load_file(str(path / "cellgen.safetensors")))
        return cls(net, codec, config, steps=steps, deterministic=deterministic)

    def save(self, path: str | Path) -> Path:
        """A model directory: ``config.json``, ``cellgen.safetensors``, the codec's ``tiles.*``."""
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()},
                  str(path / "cellgen.safetensors"))
        self.codec.save(path)
        (path / "config.json").write_text(json.dumps({"kind": "cellgen", "model": self.config}, indent=2))
        return path

    def check_frame(self, frame: np.ndarray) -> None:
        if frame.shape[0] % self.codec.cell_h or frame.shape[1] % self.codec.cell_w or frame.ndim != 3:
            raise NCError(f"first frame is {frame.shape}; this model draws {self.codec.cell_w}x{self.codec.cell_h} "
                          "pixel cells (a frame of whole cells)")

    def generate(self, first_frame: np.ndarray, caption: str, num_frames: int, seed: int) -> np.ndarray:
        """``(H, W, 3)`` uint8 first frame + caption -> ``(num_frames, H, W, 3)`` uint8; frame 0 is the given one."""
        self.check_frame(first_frame)
        with deterministic_algorithms(self.deterministic):
            grids = self.grids(self.codec.encode(first_frame), caption, num_frames)
        frames = self.codec.decode(grids)
        frames[0] = first_frame
        return frames

    def grids(self, first: np.ndarray, caption: str, num_frames: int) -> np.ndarray:
        """``(R, C)`` first-frame tile ids + caption -> ``(num_frames, R, C)`` the clip's tile ids (what
        :meth:`generate` decodes; training's validation scores it without the pixels' round trip)."""
        timing = bool(self.config.get("timing", True))
        if not timing:  # a model that does not read timing sees the caption as if it had none
            caption = strip_timing(caption)
        final, switch = sample_grid(self.net, self.codec, first, caption, self.steps,
                                    layout=bool(self.config.get("layout", True)),
                                    constrain=bool(self.config.get("constrain", True)),
                                    regular_hints=bool(self.config.get("regular_hints", False)),
                                    fps=self.fps if timing else None)
        # the clip asked for ends with the screen the caption describes: a shorter one (a session that
        # ended) reaches it by its last frame; frames past the clip the model knows keep it
        if self.config.get("coherent_switch", True):
            switch = coherent_switch(first, final, switch)
        if timing and self.config.get("typing", True):
            switch = typed_rows(first, final, switch, parse_timing(caption, self.fps), parse_detailed(caption),
                                parse_commands(caption), _number(self.config.get("key_frames")))
        return compose_frames(first, final, np.minimum(switch, num_frames - 1), num_frames)
