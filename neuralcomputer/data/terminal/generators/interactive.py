"""``interactive`` sessions: one full-screen program per session (less, vim, nano or top).

These programs switch to the terminal's alternate screen and redraw it in place, which is what a
terminal video model must learn beyond scrolling text. Keys inside a program wait for the screen
to go quiet (``wait_for="quiet"``); the step that leaves the program waits for the shell prompt.
The program is chosen by ``(seed + index) % 4``, so any four consecutive sessions cover all four.
"""

from __future__ import annotations

import random

from neuralcomputer.data.terminal.generators._common import (
    WORDS,
    file_stem,
    log_lines,
    paragraph_lines,
    press,
    run,
    sentence,
    session_rng,
    think,
)
from neuralcomputer.data.terminal.session import SessionScript, Step

TOOLS = ("less", "vim", "nano", "top")
ALT_SCREEN = "\x1b[?1049h"


def _typed_lines(rng: random.Random, n: int) -> list[str]:
    return [sentence(rng, 3, 6) for _ in range(n)]


def _less(rng: random.Random) -> tuple[dict[str, str], list[Step], list[str], str]:
    if rng.random() < 0.5:
        name = f"{rng.choice(('server', 'system', 'deploy'))}.log"
        content = log_lines(rng, rng.randint(120, 220))
    else:
        name = f"{file_stem(rng)}.txt"
        content = paragraph_lines(rng, rng.randint(120, 220))
    # search for a word that first occurs below the first screen, so the search visibly jumps
    lines = content.splitlines()
    below = " ".join(lines[30:]).replace(",", " ").replace(".", " ").split()
    target = rng.choice([w for w in below if w.isalpha() and len(w) > 3] or ["line"])
    steps: list[Step] = []
    if rng.random() < 0.5:
        steps.append(run(rng, f"wc -l {name}", "check how long the file is"))
    steps.append(run(rng, f"less {name}", "open the file in a pager", wait_for="quiet"))
    steps.append(press(rng, " ", "scroll down a page"))
    steps.append(press(rng, "j" * rng.randint(2, 5), "scroll down a few lines"))
    steps.append(press(rng, f"/{target}\r", "search for a word"))
    if rng.random() < 0.6:
        steps.append(press(rng, "n", "jump to the next match"))
    if rng.random() < 0.5:
        steps.append(press(rng, "k" * rng.randint(1, 3), "scroll back up a little"))
    steps.append(press(rng, "q", "quit the pager", wait_for="prompt"))
    return {name: content}, steps, [ALT_SCREEN, lines[0][:40]], "read a long file in a pager"


def _vim(rng: random.Random) -> tuple[dict[str, str], list[Step], list[str], str]:
    name = f"{rng.choice(('notes', 'todo', 'ideas', 'draft', 'journal'))}.txt"
    files: dict[str, str] = {}
    steps: list[Step] = []
    existing = rng.random() < 0.5
    if existing:
        files[name] = paragraph_lines(rng, rng.randint(2, 5))
        steps.append(run(rng, f"cat {name}", "look at the file before editing"))
    steps.append(run(rng, f"vim {name}", "open the file in vim", wait_for="quiet"))
    # appending below existing text ("G" then "o") or inserting into a new file ("i")
    steps.append(press(rng, "Go" if existing else "i", "start inserting text"))
    lines = _typed_lines(rng, rng.randint(1, 3))
    steps.append(press(rng, "\r".join(lines), "type a few lines of text", pause=think(rng, 0.5, 1.5)))
    steps.append(press(rng, "\x1b", "leave insert mode"))
    steps.append(press(rng, ":wq\r", "save the file and quit", wait_for="prompt"))
    steps.append(run(rng, f"cat {name}", "check the saved file"))
    return files, steps, [ALT_SCREEN, *lines], "edit a text file in vim"


def _nano(rng: random.Random) -> tuple[dict[str, str], list[Step], list[str], str]:
    name = f"{rng.choice(('shopping', 'todo', 'memo', 'plan', 'list'))}.txt"
    steps = [run(rng, f"nano {name}", "open a new file in nano", wait_for="quiet")]
    lines = [f"{rng.choice(('buy', 'fix', 'call', 'write', 'read', 'clean'))} {rng.choice(WORDS)}"
             for _ in range(rng.randint(2, 4))]
    steps.append(press(rng, "\r".join(lines) + "\r", "type a short list", pause=think(rng, 0.5, 1.5)))
    steps.append(press(rng, "\x0f", "ask to save the file"))
    steps.append(press(rng, "\r", "confirm the file name"))
    steps.append(press(rng, "\x18", "exit the editor", wait_for="prompt"))
    steps.append(run(rng, f"cat {name}", "check the saved file"))
    return {}, steps, [ALT_SCREEN, *lines, "[ Wrote "], "write a short list in nano"


def _top(rng: random.Random) -> tuple[dict[str, str], list[Step], list[str], str]:
    steps = [run(rng, rng.choice(("uptime", "ps", "free -h", "nproc")), "check the system briefly")]
    watch = round(rng.uniform(2.0, 3.5), 2)
    steps.append(run(rng, "top -d 1", "watch the running processes", wait_for="quiet", hold=watch))
    if rng.random() < 0.4:
        steps.append(Step(keys="M", intent="sort the processes by memory", wait_for="quiet",
                          pause=think(rng, 0.3, 0.8), hold=round(rng.uniform(1.0, 2.0), 2)))
    steps.append(press(rng, "q", "quit the process viewer", wait_for="prompt"))
    if rng.random() < 0.5:
        steps.append(run(rng, "echo done", "print a short message"))
    return {}, steps, ["Tasks:"], "check the running processes"


_MAKERS = {"less": _less, "vim": _vim, "nano": _nano, "top": _top}


def interactive(seed: int, index: int) -> SessionScript:
    """One full-screen program per session: a pager, two editors or a process viewer."""
    rng = session_rng("interactive", seed, index)
    tool = TOOLS[(seed + index) % len(TOOLS)]
    files, steps, expect, task = _MAKERS[tool](rng)
    if len(steps) < 8 and rng.random() < 0.3:
        steps.insert(0, run(rng, rng.choice(("ls", "ls -l", "pwd")), "look around first"))
    return SessionScript(
        generator="interactive", seed=seed, index=index, task=task, steps=steps, files=files,
        extra={"tool": tool, "expect_output": expect},
    )
