"""Probes: can the model compute (arithmetic), and does it answer the same way twice (determinism)?

Arithmetic (the paper, Finding 1-2): the screen shows a Python REPL where the user has typed a
held-out problem; the model renders what comes next; the answer is read back by grid OCR from the
last frame and compared exactly. Natively the caption only says what was typed; with
``reprompt=True`` it also quotes the correct answer, as the paper's reprompting does (4% -> 83%).

Determinism (the paper's behaviour-consistency requirement): the same inputs and seed N times;
the fraction of runs bit-identical to the first, and the mean per-pixel variance across runs.
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from dataclasses import asdict, dataclass

import numpy as np

from neuralcomputer.data.terminal.captions import CaptionContext, TemplateCaptioner
from neuralcomputer.data.terminal.emulator import Terminal
from neuralcomputer.data.terminal.generators.arithmetic import Problem, heldout_problems
from neuralcomputer.data.terminal.recorder import shell_prompt
from neuralcomputer.data.terminal.render import FrameRenderer
from neuralcomputer.data.terminal.session import REPL_PROMPT as REPL
from neuralcomputer.errors import NCError
from neuralcomputer.eval.interface import ClipGenerator


def arithmetic_problems(n: int = 100, seed: int = 0) -> list[Problem]:
    """``n`` problems sampled (without replacement) from the fixed held-out pool."""
    pool = heldout_problems()
    return random.Random(f"probe-arithmetic:{seed}").sample(pool, min(n, len(pool)))


def arithmetic_prompt_frame(expression: str, *, cols: int = 80, rows: int = 24, font_size: int = 13,
                            theme: str = "dark") -> np.ndarray:
    """The screen just before the user presses Enter: ``python3 -q`` started, the expression typed.

    Returns ``(H, W, 3)`` uint8, rendered like the ``python-math`` training sessions.
    """
    terminal = Terminal(cols, rows)
    terminal.feed(f"{shell_prompt()}python3 -q\r\n{REPL}{expression}")
    return FrameRenderer(cols, rows, font_size=font_size, theme=theme).render(terminal).copy()


def arithmetic_caption(problem: Problem, reprompt: bool, *, cols: int = 80, rows: int = 24) -> str:
    """The detailed caption, in the training captions' wording; with ``reprompt`` it quotes the answer
    where it will stand (the screen after Enter, as :func:`arithmetic_prompt_frame` leaves it)."""
    if not reprompt:
        return f"The user types `{problem.expression}`."
    terminal = Terminal(cols, rows)
    terminal.feed(f"{shell_prompt()}python3 -q\r\n{REPL}{problem.expression}")
    first = terminal.text()
    terminal.feed(f"\r\n{problem.answer}\r\n{REPL}")
    context = CaptionContext(commands=[problem.expression], intents=[], task="", first_text=first,
                             last_text=terminal.text(), new_lines=[], full_screen=False)
    return TemplateCaptioner().detailed(context)


def _prompt_line(lines: list[str], expression: str) -> int | None:
    """Index of the last line reading exactly ``>>> expression`` (spaces folded), or None."""
    target = re.sub(r"\s+", " ", f"{REPL}{expression}".strip())
    for i in range(len(lines) - 1, -1, -1):
        if re.sub(r"\s+", " ", lines[i].strip()) == target:
            return i
    return None


def read_answer(screen: str, expression: str) -> str | None:
    """The first non-empty line after the last ``>>> expression`` line, or None."""
    lines = screen.split("\n")
    i = _prompt_line(lines, expression)
    if i is None:
        return None
    return next((line.strip() for line in lines[i + 1:] if line.strip()), None)


@dataclass
class ArithmeticItem:
    """One probe problem and what the model showed."""

    expression: str
    answer: str
    level: int
    read: str | None
    correct: bool
    prompt_legible: bool  # the ``>>> expression`` line itself was read back exactly
    caption: str  # what the model was conditioned on (hybrid: the runtime's, from the real engine)


def probe_arithmetic(model: ClipGenerator, *, n: int = 100, seed: int = 0, reprompt: bool = False,
                     num_frames: int | None = None, font_size: int = 13, theme: str = "dark",
                     mode: str | None = None, keep_last_frames: bool = False) -> dict:
    """Exact-match accuracy of the answers the model renders for ``n`` held-out problems.

    ``mode``: ``native`` (the caption says what was typed), ``reprompt`` (it also quotes the right
    answer; the same as ``reprompt=True``) or ``hybrid``: ``model`` is a
    :class:`~neuralcomputer.runtime.computer.NeuralComputer` in hybrid mode with the ``python``
    engine, and each problem is one :meth:`~neuralcomputer.runtime.computer.NeuralComputer.step`: a
    real Python computes the answer and the runtime's caption quotes it.

    The answer is read from the clip's last frame; ``num_frames`` defaults to the model's whole clip
    (``model.clip_frames`` when it has one, else 15). A shorter clip can end before the model's first
    generated frame: a model sampling every 15th frame shows only the given frame in frames 0-14.

    Returns ``{"accuracy", "n", "mode", "reprompt", "by_level": {level: accuracy}, "items": [...]}``,
    and with ``keep_last_frames`` also ``"last_frames"``: each item's last frame, (H, W, 3) uint8.
    """
    from neuralcomputer.eval.grid_ocr import GridOCR

    mode = mode or ("reprompt" if reprompt else "native")
    if mode not in ("native", "reprompt", "hybrid"):
        raise NCError(f"mode {mode!r}: expected native, reprompt or hybrid")
    if mode == "hybrid" and not getattr(model, "hybrid", False):
        raise NCError("hybrid mode needs a NeuralComputer loaded with hybrid=True (engine python)")
    num_frames = num_frames or int(getattr(model, "clip_frames", 15))
    reader = GridOCR(font_size=font_size, theme=theme)
    items: list[ArithmeticItem] = []
    last_frames: list[np.ndarray] = []
    for i, problem in enumerate(arithmetic_problems(n, seed)):
        first = arithmetic_prompt_frame(problem.expression, font_size=font_size, theme=theme)
        if mode == "hybrid":
            model.seed = seed + i
            model.reset(first)
            result = model.step({"type": "command", "text": problem.expression})
            frames, caption = result.frames, result.record["caption"]
        else:
            caption = arithmetic_caption(problem, mode == "reprompt")
            frames = model.generate(first, caption, num_frames, seed + i)
        if keep_last_frames:
            last_frames.append(np.asarray(frames[-1]))
        lines = reader.read(frames[-1]).split("\n")
        read = read_answer("\n".join(lines), problem.expression)
        items.append(ArithmeticItem(problem.expression, problem.answer, problem.level, read, read == problem.answer,
                                    _prompt_line(lines, problem.expression) is not None, caption))
    by_level: dict[int, list[bool]] = defaultdict(list)
    for item in items:
        by_level[item.level].append(item.correct)
    return {
        "accuracy": float(np.mean([item.correct for item in items])) if items else None,
        "n": len(items),
        "mode": mode,
        "reprompt": mode == "reprompt",
        "by_level": {level: float(np.mean(v)) for level, v in sorted(by_level.items())},
        "items": [asdict(item) for item in items],
        **({"last_frames": last_frames} if keep_last_frames else {}),
    }


# Commands the hybrid probe types, none of them in the training sessions' exact form: arithmetic in the
# shell, echo, seq, printf, a fresh folder listed, a Python traceback, a long line that wraps.
HYBRID_COMMANDS = (
    "echo hello world; seq 3",
    "echo $((37 * 41 - 6))",
    "seq 7 11",
    "printf '%s=%d\\n' alpha 1 beta 22",
    "mkdir -p fresh/dir && cd fresh && touch zeta.txt alpha.md 'b c' && ls",
    "python3 -c 'import math; print(math.factorial(12)); 1/0'",
    "echo $(( (2 ** 20) % 997 )) $((123456789 / 1234))",
    "pwd; cd ..; pwd",
    "printf 'col1\\tcol2\\n%s\\t%s\\n' x y",
    "echo 'the quick brown fox jumps over the lazy dog, then the quick brown fox jumps over it again and again'",
)


def probe_hybrid(computer, commands: tuple[str, ...] | list[str] = HYBRID_COMMANDS, *, font_size: int = 13,
                 theme: str = "dark") -> dict:
    """Hybrid mode, command after command in one session: does the model's last frame show the real
    shell's screen? Each step's real screen (the sandboxed engine's) is compared with grid OCR of the
    model's last frame, row by row (trailing spaces ignored).

    ``computer``: a terminal :class:`~neuralcomputer.runtime.computer.NeuralComputer` with hybrid on.
    Returns ``{"lines_exact": share of the real screen's non-blank rows shown exactly, "rows_exact":
    share of all rows, "steps_exact": share of steps whose whole screen is right, "items": [...]}``.
    """
    from neuralcomputer.eval.grid_ocr import GridOCR

    if not getattr(computer, "hybrid", False):
        raise NCError("the hybrid probe needs a terminal NeuralComputer loaded with hybrid=True")
    reader = GridOCR(font_size=font_size, theme=theme)
    computer.reset()
    items = []
    for command in commands:
        result = computer.step({"type": "command", "text": command})
        real = [line.rstrip() for line in result.record["engine"]["screen_text"].split("\n")]
        shown = [line.rstrip() for line in reader.read(result.frames[-1]).split("\n")]
        shown += [""] * (len(real) - len(shown))
        pairs = list(zip(real, shown, strict=False))
        lines = [(r, s) for r, s in pairs if r]
        items.append({"command": command, "lines": len(lines), "lines_exact": sum(r == s for r, s in lines),
                      "rows": len(pairs), "rows_exact": sum(r == s for r, s in pairs),
                      "wrong": [{"row": i, "real": r, "shown": s} for i, (r, s) in enumerate(pairs) if r != s][:8]})
    n_lines = sum(i["lines"] for i in items)
    return {"lines_exact": sum(i["lines_exact"] for i in items) / max(n_lines, 1),
            "rows_exact": sum(i["rows_exact"] for i in items) / max(sum(i["rows"] for i in items), 1),
            "steps_exact": float(np.mean([i["rows_exact"] == i["rows"] for i in items])) if items else None,
            "commands": len(items), "lines": n_lines, "items": items}


def probe_determinism(model: ClipGenerator, first_frame: np.ndarray, caption: str, *, runs: int = 5,
                      seed: int = 0, num_frames: int = 15) -> dict:
    """Run the same inputs ``runs`` times with the same seed.

    Returns ``{"identical_fraction", "mean_pixel_variance", "runs"}``: the fraction of runs whose
    frames are bit-identical to the first run's, and the per-pixel variance across runs (0-255 scale)
    averaged over pixels and frames.
    """
    outputs = [np.asarray(model.generate(first_frame, caption, num_frames, seed)) for _ in range(runs)]
    identical = [np.array_equal(outputs[0], o) for o in outputs[1:]]
    stack = np.stack(outputs).astype(np.float64)
    return {
        "runs": runs,
        "identical_fraction": float(np.mean(identical)) if identical else 1.0,
        "mean_pixel_variance": float(stack.var(axis=0).mean()),
    }
