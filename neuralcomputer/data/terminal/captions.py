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


def context_for(clip: Clip, task: str = "", generator: str = "") -> CaptionContext:
    """Gather the caption context of a clip (commands, intents, first/last screen text)."""
    first, last = clip.texts[clip.frame_index[0]], clip.texts[clip.frame_index[-1]]
    return CaptionContext(
        commands=[c.text for c in clip.commands], intents=list(clip.intents), task=task,
        first_text=first, last_text=last, new_lines=new_screen_lines(first, last),
        full_screen=clip.alt_screen_frames > clip.num_frames // 2, generator=generator,
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
        """The literal commands, then the whole change of the screen: how many lines it scrolled, and every
        line from the first one that changed, verbatim (indentation kept, repeated lines repeated), so the
        caption alone determines the last screen given the first (:func:`screen_change`)."""
        parts = []
        if ctx.commands:
            parts.append("The user types " + _join([f"`{c}`" for c in ctx.commands]) + ".")
        change = screen_change(ctx.first_text, ctx.last_text)
        if change.scroll:
            parts.append(f"The screen scrolls up {change.scroll} line{'s' if change.scroll != 1 else ''}.")
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
