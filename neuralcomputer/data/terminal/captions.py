"""Three caption tiers per clip, built from the session structure and the emulated screen.

The paper's tiers: ``semantic`` says what the user is doing without any literal text; ``regular``
names the commands and summarises the output; ``detailed`` gives the literal commands and the
literal text that appears. No LLM is needed. A :class:`Captioner` protocol is the hook for an
external LLM captioner (never called in tests): implement ``caption(context) -> dict`` and pass it
to the dataset builder.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from neuralcomputer.data.terminal.clips import Clip

TIERS = ("semantic", "regular", "detailed")

# Program name -> what a user running it is doing (semantic tier: activity, no literal text).
_ACTIVITIES: dict[str, str] = {
    **dict.fromkeys(["ls", "tree", "cd", "pwd", "find", "du", "df", "stat", "file"], "browses the file system"),
    **dict.fromkeys(["cat", "head", "tail", "less", "more", "bat", "man"], "reads the contents of files"),
    **dict.fromkeys(["mkdir", "touch", "cp", "mv", "rm", "ln", "chmod", "rmdir"], "organises files and folders"),
    **dict.fromkeys(["grep", "sed", "awk", "sort", "uniq", "cut", "tr", "wc", "jq", "rg"], "processes text with filters"),
    **dict.fromkeys(["git", "gac", "gh"], "works with git version control"),
    **dict.fromkeys(["python", "python3", "ipython", "node", "ruby", "perl"], "runs code in an interpreter"),
    **dict.fromkeys(["vim", "vi", "nvim", "nano", "emacs", "micro"], "edits a file in a text editor"),
    **dict.fromkeys(["top", "htop", "btop", "ps", "kill", "free", "uptime"], "monitors running processes"),
    **dict.fromkeys(["pip", "npm", "yarn", "cargo", "apt", "apt-get", "brew", "go", "make", "cmake"],
                    "builds software or installs packages"),
    **dict.fromkeys(["docker", "kubectl", "juju", "ssh", "tmux", "zellij", "screen"], "manages remote or containerised systems"),
    **dict.fromkeys(["echo", "printf", "date", "whoami", "uname", "hostname", "id", "env", "export"],
                    "queries the shell and the system"),
    **dict.fromkeys(["curl", "wget", "ping"], "talks to network services"),
}


@dataclass
class CaptionContext:
    """What a captioner may look at for one clip."""

    commands: list[str]
    intents: list[str]
    task: str
    first_text: str
    last_text: str
    new_lines: list[str]
    full_screen: bool
    generator: str = ""
    extra: dict = field(default_factory=dict)
    timing: tuple[RowTiming, ...] = ()
    fps: float = 15.0


class Captioner(Protocol):
    """Anything that turns a :class:`CaptionContext` into ``{"semantic", "regular", "detailed"}``.

    The built-in :class:`TemplateCaptioner` needs nothing; an external LLM captioner can implement
    this protocol (send the context, parse three strings back) and be passed to the renderer.
    """

    def caption(self, context: CaptionContext) -> dict[str, str]: ...


def new_screen_lines(first: str, last: str) -> list[str]:
    """Lines on the last screen that were not on the first one (multiset difference, in order)."""
    before = Counter(line.strip() for line in first.splitlines() if line.strip())
    out = []
    for line in last.splitlines():
        key = line.strip()
        if not key:
            continue
        if before[key] > 0:
            before[key] -= 1
        else:
            out.append(key)
    return out


@dataclass(frozen=True)
class ScreenChange:
    """How the last screen follows from the first: scrolled up ``scroll`` rows, then rows from ``row`` on
    (0-based) replaced by ``lines`` (verbatim, indentation kept, trailing spaces stripped)."""

    scroll: int
    row: int
    lines: tuple[str, ...]


def screen_change(first: str, last: str) -> ScreenChange:
    """The smallest description of ``last`` given ``first``: the scroll that keeps the most leading rows
    in place (ties: the smaller scroll), then every row from the first one that differs to the last
    non-blank row. Pasting ``lines`` at ``row`` over ``first`` scrolled by ``scroll`` gives ``last``
    exactly (blank rows below the last quoted one stay blank)."""
    a = [line.rstrip() for line in first.split("\n")]
    b = [line.rstrip() for line in last.split("\n")]
    rows = max(len(a), len(b))
    a += [""] * (rows - len(a))
    b += [""] * (rows - len(b))
    best_scroll, best_row = 0, -1
    for scroll in range(rows):
        shifted = a[scroll:] + [""] * scroll
        row = 0
        while row < rows and shifted[row] == b[row]:
            row += 1
        if row > best_row:
            best_scroll, best_row = scroll, row
        if row == rows:
            break
    shifted = a[best_scroll:] + [""] * best_scroll
    end = max((i + 1 for i in range(rows) if b[i]), default=0)
    # rows after `end` are blank in `last`; they must be blank in the shifted first screen too, or quoted
    while end < rows and shifted[end:] != [""] * (rows - end):
        end = rows
    return ScreenChange(best_scroll, best_row, tuple(b[best_row:end]) if best_row < end else ())


@dataclass(frozen=True)
class RowTiming:
    """When rows of the screen change: rows ``first``..``last`` (0-based, the last screen's rows) take
    their last text between frames ``start`` and ``end`` of the clip (the frame the first of their
    characters settles, and the frame the last one does: typing spreads a row over frames)."""

    first: int
    last: int
    start: int
    end: int


def settle_frames(grids: np.ndarray) -> np.ndarray:
    """``(T, R, C)`` cells of every frame (characters or tile ids) -> ``(R, C)`` the frame from which each
    cell keeps its last value (0 for a cell that never differs from it)."""
    differs = grids != grids[-1][None]                                                        # (T, R, C)
    t = grids.shape[0]
    last_diff = np.where(differs.any(0), t - 1 - np.argmax(differs[::-1], axis=0), -1)
    return (last_diff + 1).astype(np.int64)


def row_timing(texts: list[str]) -> tuple[RowTiming, ...]:
    """Per frame screen texts (``T`` strings, rows joined by newlines) -> when each row settles.

    A character cell settles at the frame after the last one where it differs from the last screen
    (:func:`settle_frames`, CellGen's switch frame, in text); a row's interval runs from its first
    settled cell to its last. Rows that never change are left out; runs of rows with one interval are one
    :class:`RowTiming` (output printed at once)."""
    if not texts:
        return ()
    rows = max(len(t.split("\n")) for t in texts)
    cols = max((len(line) for t in texts for line in t.split("\n")), default=0)
    if cols == 0:
        return ()
    grid = np.full((len(texts), rows, cols), " ", dtype="<U1")
    for k, text in enumerate(texts):
        for r, line in enumerate(text.split("\n")):
            if line:
                grid[k, r, : len(line)] = list(line)
    settle = settle_frames(grid)                                                           # (R, C)
    changed = settle > 0
    out: list[RowTiming] = []
    for r in range(rows):
        if not changed[r].any():
            continue
        start, end = int(settle[r][changed[r]].min()), int(settle[r][changed[r]].max())
        if out and out[-1].last == r - 1 and (out[-1].start, out[-1].end) == (start, end):
            out[-1] = RowTiming(out[-1].first, r, start, end)
        else:
            out.append(RowTiming(r, r, start, end))
    return tuple(out)


def _seconds(frame: int, fps: float) -> str:
    return f"{frame / fps:.2f} s"


def timing_sentence(timing: tuple[RowTiming, ...], fps: float) -> str:
    """``Timing: line 3 from 0.40 s to 1.13 s; lines 4-9 at 1.20 s.`` (1-based lines, seconds from the
    clip's first frame; :func:`parse_timing` reads it back to frames at the same ``fps``)."""
    parts = []
    for t in timing:
        rows = f"line {t.first + 1}" if t.first == t.last else f"lines {t.first + 1}-{t.last + 1}"
        when = (f"at {_seconds(t.start, fps)}" if t.start == t.end
                else f"from {_seconds(t.start, fps)} to {_seconds(t.end, fps)}")
        parts.append(f"{rows} {when}")
    return "Timing: " + "; ".join(parts) + "." if parts else ""


_TIMING = re.compile(r"Timing: ([^\n]*?)\.(?: |\n|\Z)")
_TIMING_ITEM = re.compile(r"lines? (\d+)(?:-(\d+))? (?:at (\d+(?:\.\d+)?) s|from (\d+(?:\.\d+)?) s to (\d+(?:\.\d+)?) s)\Z")


def parse_timing(caption: str, fps: float) -> tuple[RowTiming, ...]:
    """The :func:`timing_sentence` of a caption, in frames at ``fps`` (``()`` when it has none; an item
    that does not read as one is skipped: timing is a hint, the quote is what fixes the screen)."""
    # the last sentence before the quoted screen text (a command could quote the word too)
    found = _TIMING.findall(caption.partition("From line ")[0])
    if not found:
        return ()
    out = []
    for item in found[-1].split("; "):
        m = _TIMING_ITEM.match(item.strip())
        if not m:
            continue
        first = int(m.group(1)) - 1
        last = int(m.group(2)) - 1 if m.group(2) else first
        start_s, end_s = (m.group(3), m.group(3)) if m.group(3) else (m.group(4), m.group(5))
        start, end = round(float(start_s) * fps), round(float(end_s) * fps)
        if 0 <= first <= last and 0 <= start <= end:
            out.append(RowTiming(first, last, start, end))
    return tuple(out)


_TYPES = re.compile(r"(?:\A|\. )The user types (`[^\n]*?`)\.(?: |\Z)")


def parse_commands(caption: str) -> tuple[str, ...]:
    """The commands a detailed caption says the user types (``The user types `ls` and `cd x`.``)."""
    found = _TYPES.search(caption.partition("From line ")[0])
    return tuple(re.findall(r"`([^`]*)`", found.group(1))) if found else ()


def strip_timing(caption: str) -> str:
    """The caption without its timing sentence (what a caption that does not know the timing says)."""
    head, sep, quote = caption.partition("From line ")
    found = list(_TIMING.finditer(head))
    if not found:
        return caption
    m = found[-1]  # the sentence takes its trailing space with it
    return head[: m.start()] + head[m.end():] + sep + quote


_SCROLL = re.compile(r"The screen scrolls up (\d+) lines?\.")
_BLOCK = re.compile(r"From line (\d+) the screen reads:\n(.*)\Z", re.S)


def parse_detailed(caption: str) -> ScreenChange:
    """What a detailed caption says of the screen (:meth:`TemplateCaptioner.detailed`'s wording): the
    scroll and the quoted lines from their row. Other tiers, and a quote the captioner cut (`` ...``),
    give what they say and no more (a cut quote keeps its complete lines)."""
    scroll = _SCROLL.search(caption)
    block = _BLOCK.search(caption)
    lines: tuple[str, ...] = ()
    row = 0
    if block:
        row = max(0, int(block.group(1)) - 1)
        text = block.group(2)
        if text.endswith(" ..."):  # cut: the last line is incomplete, so it is not quoted at all
            kept = text[:-4].rpartition("\n")[0]
            lines = tuple(kept.split("\n")) if kept else ()
        else:
            lines = tuple(text.split("\n"))
    return ScreenChange(int(scroll.group(1)) if scroll else 0, row, lines)


def detailed_scope(caption: str) -> str:
    """How much of the last screen's text a caption determines: ``"whole"`` (a detailed caption with its
    whole quote, or one saying the screen stays the same), ``"cut"`` (a quote the captioner cut: the rows
    before its end), or ``""`` (other tiers: nothing)."""
    block = _BLOCK.search(caption)
    if block:
        return "cut" if block.group(2).endswith(" ...") else "whole"
    if caption.rstrip().endswith("The screen is blank.") or _SAME.search(caption):
        return "whole"
    return ""


_SAME = re.compile(r"The screen stays the same, ending with `[^\n]*`\.\Z")


_RUNS = re.compile(r"\AThe user runs (.*?)\.(?: The terminal shows | A full-screen program |\Z)", re.S)
_NEW_LINES = re.compile(r"The terminal shows (?:output|an error): (\d+) new lines?, the last reading `([^\n]*)`\.\Z")
_PROMPT_END = re.compile(r"[#$>%:]\Z")


def parse_regular(caption: str, first_text: str) -> dict[int, str]:
    """Where a regular caption's literal text most likely stands on the last screen, given the first
    screen's text (:meth:`TemplateCaptioner.regular`'s wording): ``{row: line}``, 0-based rows.

    A regular caption says which commands run and how many new lines appear, the last one quoted; it
    never says where. Read against the first screen: the first command is typed at the prompt on the
    last non-blank row (completing what is already typed there) and the new lines follow it row by row,
    so the last new line stands ``N - 1`` rows below the prompt. A guess: on the clean data 86% of the
    lines it places are exact (misses: the commands of a step that began before the clip, a ``clear``,
    blank output lines), so a model reads it as a hint, never as a constraint. Nothing when the new
    lines would run past the last row (how far the screen scrolls is a worse guess: right in 54 of 245
    such clean clips), for a full-screen program, a cut last line (80 characters), or a prompt row that
    reads as neither a prompt nor the command's start."""
    if "A full-screen program fills the terminal." in caption:
        return {}
    rows = first_text.split("\n")
    filled = [r for r, line in enumerate(rows) if line.strip()]
    if not filled:
        return {}
    prompt_row = filled[-1]
    found = _NEW_LINES.search(caption)
    new, last = (int(found.group(1)), found.group(2)) if found else (0, "")
    if prompt_row + new > len(rows):  # the screen scrolls, by an amount the caption does not say
        return {}
    out: dict[int, str] = {}
    runs = _RUNS.search(caption)
    commands = re.findall(r"`([^`]*)`", runs.group(1)) if runs else []
    if commands:
        typed, command = rows[prompt_row].rstrip(), commands[0]
        # the longest end of the prompt row that starts the command (a clip can begin mid-typing)
        overlap = next((k for k in range(min(len(typed), len(command)), 0, -1) if typed.endswith(command[:k])), 0)
        if overlap:
            out[prompt_row] = typed[: len(typed) - overlap] + command
        elif _PROMPT_END.search(typed):
            out[prompt_row] = typed + " " + command
    if new and last and len(last) < 80:  # the captioner cuts the quote at 80 characters
        out[prompt_row + new - 1] = last  # the line the screen ends with wins over the guess
    return out


def context_for(clip: Clip, task: str = "", generator: str = "", fps: float = 15.0) -> CaptionContext:
    """Gather the caption context of a clip (commands, intents, first/last screen text, when rows change;
    ``fps``: the clip's frame rate)."""
    first, last = clip.texts[clip.frame_index[0]], clip.texts[clip.frame_index[-1]]
    return CaptionContext(
        commands=[c.text for c in clip.commands], intents=list(clip.intents), task=task,
        first_text=first, last_text=last, new_lines=new_screen_lines(first, last),
        full_screen=clip.alt_screen_frames > clip.num_frames // 2, generator=generator,
        timing=row_timing([clip.texts[i] for i in clip.frame_index]), fps=fps,
    )


def _program(command: str) -> str:
    words = [w for w in re.split(r"\s+", command.strip()) if w and "=" not in w and w != "sudo"]
    return words[0].rsplit("/", 1)[-1] if words else ""


def _join(items: list[str]) -> str:
    items = list(dict.fromkeys(i for i in items if i))
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


_ERROR = re.compile(r"Traceback|Error|error:|No such file|not found|fatal:|Permission denied")


class TemplateCaptioner:
    """Deterministic captions from the session structure and the screen text.

    Args:
        max_detailed_chars: the detailed tier quotes screen text up to this many characters.
    """

    def __init__(self, max_detailed_chars: int = 1500) -> None:
        self.max_detailed_chars = max_detailed_chars

    def semantic(self, ctx: CaptionContext) -> str:
        if ctx.intents:
            what = _join([i.rstrip(".") for i in ctx.intents])
            lead = f"In a terminal session to {ctx.task.rstrip('.').lower()}, the user" if ctx.task else "The user"
            return f"{lead} goes on to {what}."
        activities = _join([_ACTIVITIES.get(_program(c), "runs a command-line program") for c in ctx.commands])
        if activities:
            return f"In a terminal, the user {activities}."
        if ctx.full_screen:
            return "A full-screen terminal application is in use and its display updates."
        if ctx.new_lines:
            return "A terminal shows a program printing output."
        return "A terminal waits with little or no change on screen."

    def regular(self, ctx: CaptionContext) -> str:
        parts = []
        if ctx.commands:
            parts.append("The user runs " + _join([f"`{c}`" for c in ctx.commands]) + ".")
        n = len(ctx.new_lines)
        if ctx.full_screen:
            parts.append("A full-screen program fills the terminal.")
        if n:
            kind = "an error" if any(_ERROR.search(line) for line in ctx.new_lines) else "output"
            parts.append(f"The terminal shows {kind}: {n} new line{'s' if n != 1 else ''}, "
                         f"the last reading `{ctx.new_lines[-1][:80]}`.")
        elif not parts:
            parts.append("Nothing new appears on screen.")
        return " ".join(parts)

    def detailed(self, ctx: CaptionContext) -> str:
        """The literal commands, then the whole change of the screen: how many lines it scrolled, when each
        changed row settles (:func:`timing_sentence`, when the context knows), and every line from the
        first one that changed, verbatim (indentation kept, repeated lines repeated), so the caption alone
        determines the last screen given the first (:func:`screen_change`), and when it gets there."""
        parts = []
        if ctx.commands:
            parts.append("The user types " + _join([f"`{c}`" for c in ctx.commands]) + ".")
        change = screen_change(ctx.first_text, ctx.last_text)
        if change.scroll:
            parts.append(f"The screen scrolls up {change.scroll} line{'s' if change.scroll != 1 else ''}.")
        if (change.lines or change.scroll) and ctx.timing:
            parts.append(timing_sentence(ctx.timing, ctx.fps))
        if change.lines:
            text = "\n".join(change.lines)
            if len(text) > self.max_detailed_chars:
                text = text[: self.max_detailed_chars] + " ..."
            parts.append(f"From line {change.row + 1} the screen reads:\n" + text)
        else:
            last = [line for line in ctx.last_text.splitlines() if line.strip()]
            quoted = last[-1].strip() if last else ""
            parts.append(f"The screen stays the same, ending with `{quoted}`." if quoted else "The screen is blank.")
        return " ".join(parts)

    def caption(self, context: CaptionContext) -> dict[str, str]:
        return {"semantic": self.semantic(context), "regular": self.regular(context),
                "detailed": self.detailed(context)}
