"""Reasoning engines for hybrid mode: something that really runs the command decides what the screen shows.

The video model renders; an engine computes. For each command an engine returns the terminal
screen a real terminal of the model's grid would show afterwards, and the detailed caption in the
exact wording of the training captions (:meth:`TemplateCaptioner.detailed
<neuralcomputer.data.terminal.captions.TemplateCaptioner.detailed>`), which is what the model is conditioned
on (the paper's reprompting).

* :class:`ShellEngine` runs each command with bash in a :class:`~neuralcomputer.runtime.sandbox.Sandbox`;
  the working directory and files persist across commands (shell variables do not: each command is
  a fresh bash);
* :class:`PythonEngine` evaluates what the user types at a Python REPL, sandboxed the same way;
* :class:`LLMEngine` asks an external language model (any ``Callable[[str], str]``) what the
  command prints; the project never calls one itself.

Captions compare the screen just before Enter (the command typed after the prompt) with the screen
after the command, like :func:`neuralcomputer.eval.probes.arithmetic_prompt_frame` does for the
arithmetic probe: a Python expression gets exactly :func:`~neuralcomputer.eval.probes.arithmetic_caption`'s
reprompt wording (``The user types `2+3*4`. The screen then shows:\\n14\\n>>>``).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from neuralcomputer.data.terminal.captions import (
    CaptionContext,
    TemplateCaptioner,
    new_screen_lines,
    screen_change,
)
from neuralcomputer.data.terminal.emulator import Terminal
from neuralcomputer.data.terminal.recorder import shell_prompt
from neuralcomputer.data.terminal.session import REPL_PROMPT as REPL
from neuralcomputer.errors import NCError
from neuralcomputer.runtime.sandbox import HOME, Sandbox, SandboxLimits


@dataclass
class EngineResult:
    """What one command did, as the screen and the caption must show it.

    Attributes:
        command: what the user typed.
        screen_text: the whole terminal screen after the command (rows joined by newlines),
            at the engine's grid size.
        new_lines: lines on that screen that were not there when the command had been typed.
        caption: the detailed caption, in the training captions' wording.
        exit_code: the command's exit status (None when unknown, e.g. from an LLM).
        timed_out: the command ran past its time limit and was killed.
        truncated: its output was cut at the sandbox's output cap.
        elapsed_s: wall-clock seconds the engine took.
        output: the command's output as printed on the terminal (line ends as ``\n``).
    """

    command: str
    screen_text: str
    new_lines: list[str]
    caption: str
    exit_code: int | None
    timed_out: bool = False
    truncated: bool = False
    elapsed_s: float = 0.0
    output: str = ""


@runtime_checkable
class ReasoningEngine(Protocol):
    """What hybrid mode needs from an engine: check and run a command, start over, release resources."""

    name: str

    def check(self, command: str) -> str:
        """Refuse a command that cannot run or whose caption cannot fit, before anything runs."""
        ...

    def run(self, command: str) -> EngineResult:
        """Run one command (one line) and say what the screen shows afterwards."""
        ...

    def reset(self) -> None:
        """Forget every earlier command: a fresh screen, and fresh files where there are any."""
        ...

    def close(self) -> None:
        """Release processes and files; the engine cannot be used afterwards."""
        ...


_CAPTIONER = TemplateCaptioner()
# Bytes of a caption kept for what the screen shows, beyond the command's own words: the wording
# ("The screen scrolls up N lines. From line N the screen reads:", about 70 bytes) and at least a
# line of the screen. A command that leaves less is refused before it runs.
SCREEN_CAPTION_RESERVE = 128


class _ScreenEngine:
    """A terminal of the model's grid that commands are typed into; builds each :class:`EngineResult`.

    ``max_caption_bytes``: the model's caption limit (UTF-8 bytes). A command that leaves too little
    room for the screen is refused by :meth:`check` before it runs; the screen text a caption quotes is
    cut to fit (with " ...", as the training captions cut a long screen), so a caption never overflows.
    """

    def __init__(self, cols: int, rows: int, max_caption_bytes: int | None = None) -> None:
        if cols < 10 or rows < 2:
            raise NCError(f"engine grid {cols}x{rows}: expected at least 10x2")
        self.cols, self.rows = cols, rows
        self.max_caption_bytes = max_caption_bytes
        self.terminal = Terminal(cols, rows)

    def check(self, command: str) -> str:
        """Refuse, before anything runs, a command that is not one line or whose caption cannot fit."""
        _check_command(command)
        if self.max_caption_bytes is not None:
            words = _CAPTIONER.detailed(CaptionContext(commands=[command], intents=[], task="", first_text="",
                                                       last_text="", new_lines=[], full_screen=False))
            need = len(words.encode("utf-8", "surrogatepass")) + SCREEN_CAPTION_RESERVE
            if need > self.max_caption_bytes:
                raise NCError(f"command: too long for this model's captions (they hold {self.max_caption_bytes} "
                              f"bytes, and this command with what the screen shows needs {need})")
        return command

    def _caption(self, context: CaptionContext) -> str:
        """The detailed caption, its quoted screen text cut until it fits ``max_caption_bytes``."""
        caption = _CAPTIONER.detailed(context)
        limit = self.max_caption_bytes
        if limit is None or len(caption.encode()) <= limit:
            return caption
        def cut(chars: int) -> str:
            return TemplateCaptioner(max_detailed_chars=chars).detailed(context)

        # The most characters of screen text that fit: the caption grows with them (binary search).
        lo, hi = 0, len("\n".join(screen_change(context.first_text, context.last_text).lines))
        if len(cut(0).encode()) > limit:  # check() keeps room for the wording: only a captioner change gets here
            raise NCError(f"the screen's caption needs {len(cut(0).encode())} bytes; this model reads at most {limit}")
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if len(cut(mid).encode()) <= limit else (lo, mid - 1)
        return cut(lo)

    def _fresh_screen(self, text: str) -> None:
        self.terminal = Terminal(self.cols, self.rows)
        self.terminal.feed(text)

    @property
    def screen_text(self) -> str:
        """The screen now (rows joined by newlines)."""
        return self.terminal.text()

    def _show(self, command: str, output: str, next_prompt: str, *, exit_code: int | None,
              timed_out: bool = False, truncated: bool = False, elapsed_s: float = 0.0) -> EngineResult:
        """Type ``command``, press Enter, print ``output`` and ``next_prompt``; caption the change."""
        before = self.terminal.text()  # the screen the model shows now: the caption describes the change from it
        self.terminal.feed(command)
        first = self.terminal.text()  # just before Enter: new_lines are what the command printed
        # Output from a pipe has bare \n; a terminal (ONLCR) turns them into \r\n.
        self.terminal.feed("\r\n" + re.sub(r"(?<!\r)\n", "\r\n", output) + next_prompt)
        last = self.terminal.text()
        lines = new_screen_lines(first, last)
        context = CaptionContext(commands=[command], intents=[], task="", first_text=before, last_text=last,
                                 new_lines=lines, full_screen=self.terminal.screen.in_alternate_screen)
        return EngineResult(command, last, lines, self._caption(context), exit_code, timed_out=timed_out,
                            truncated=truncated, elapsed_s=elapsed_s, output=output.replace("\r\n", "\n"))


def _check_command(command: str) -> str:
    if not isinstance(command, str) or not command.strip():
        raise NCError("command: expected non-empty text")
    if "\n" in command or "\r" in command:
        raise NCError("command: one line expected (no newline characters)")
    return command


# Runs the user's command in the saved directory, then stops itself: the supervisor reads the
# directory it ended in from /proc (nothing the command prints can pose as it), then lets it exit
# with the command's status. A command that exits or execs first skips that: its directory is kept.
_SHELL_WRAPPER = r"""cd -- "$2" 2>/dev/null || cd
eval "$1"
__nc_status=$?
kill -STOP $$
exit $__nc_status
"""
# bash -c names the script line in its errors ("bash: line 2: foo: command not found"); an
# interactive bash, which the training sessions recorded, does not.
_BASH_LINE = re.compile(r"^bash: (?:eval: )?line \d+: ", re.MULTILINE)


class _SandboxedEngine(_ScreenEngine):
    """A screen engine whose commands run in one :class:`Sandbox`. What a command did comes back out of
    band, as the sandbox's supervisor saw it (exit status; the directory at the wrapper's final
    self-stop, :attr:`SandboxResult.stop_cwd`), never as text in its output, which the command controls."""

    def __init__(self, cols: int, rows: int, limits: SandboxLimits | None, max_caption_bytes: int | None = None) -> None:
        super().__init__(cols, rows, max_caption_bytes)
        self.sandbox = Sandbox(limits)

    def close(self) -> None:
        """Stop the sandbox; its files and processes are gone afterwards."""
        self.sandbox.close()


class ShellEngine(_SandboxedEngine):
    """A real bash in a sandbox; the screen is what a ``cols`` x ``rows`` terminal shows.

    Each command runs as ``bash -c`` on a pseudo-terminal of the grid's size (so ``ls`` prints
    columns) in the sandbox's home, starting in the directory the previous command ended in.
    Files, the directory and ``/tmp`` persist until :meth:`reset` or :meth:`close`; shell variables,
    aliases and background jobs do not (every process a command starts is killed when it ends).

    Args:
        cols, rows: the terminal grid, the model's.
        limits: the sandbox limits per command.
        max_caption_bytes: the model's caption limit in UTF-8 bytes (None: no limit).
    """

    name = "shell"

    def __init__(self, cols: int = 80, rows: int = 24, limits: SandboxLimits | None = None,
                 max_caption_bytes: int | None = None) -> None:
        super().__init__(cols, rows, limits, max_caption_bytes)
        self.cwd = HOME
        self._fresh_screen(self.prompt())

    def prompt(self) -> str:
        """The prompt for the current directory, exactly as the recorded training shells show it."""
        if self.cwd == HOME or self.cwd.startswith(HOME + "/"):
            return shell_prompt("~" + self.cwd[len(HOME):])
        return shell_prompt(self.cwd)

    def run(self, command: str) -> EngineResult:
        """Run ``command`` in the sandbox's bash and show it on the terminal."""
        self.check(command)
        restarts = self.sandbox.restarts
        result = self.sandbox.run(["/bin/bash", "-c", _SHELL_WRAPPER, "bash", command, self.cwd],
                                  tty=(self.cols, self.rows))
        if self.sandbox.restarts != restarts:
            self.cwd = HOME  # a replaced sandbox starts over in an empty home
        elif result.stop_cwd is not None:  # None if the command ran `exit`, timed out or overflowed the output cap
            self.cwd = result.stop_cwd
        return self._show(command, _BASH_LINE.sub("bash: ", result.stdout), self.prompt(), exit_code=result.exit_code,
                          timed_out=result.timed_out, truncated=result.truncated, elapsed_s=result.elapsed_s)

    def reset(self) -> None:
        """A fresh sandbox (empty home) and a fresh screen with one prompt."""
        self.sandbox.reset()
        self.cwd = HOME
        self._fresh_screen(self.prompt())


# The REPL, emulated by the standard library's own: `code.InteractiveInterpreter` prints values and
# tracebacks exactly as the interactive prompt does. Earlier inputs that succeeded are replayed
# silently first, so names defined earlier exist (their side effects run again). At its end the
# runner stops itself, so the supervisor sees it got there (an input that left the REPL did not), then
# exits 1 if the input raised.
_PYTHON_RUNNER = r"""
import code, json, os, signal, sys
history, source = json.loads(sys.argv[1]), sys.argv[2]

class Interpreter(code.InteractiveInterpreter):
    failed = False
    def showtraceback(self):
        self.failed = True
        super().showtraceback()
    def showsyntaxerror(self, filename=None, **kwargs):
        self.failed = True
        super().showsyntaxerror(filename, **kwargs)

interp = Interpreter()
real = sys.stdout, sys.stderr
with open(os.devnull, "w") as quiet:
    sys.stdout = sys.stderr = quiet
    for line in history:
        if interp.runsource(line, "<stdin>", "single"):
            interp.runsource(line + "\n", "<stdin>", "single")
    sys.stdout, sys.stderr = real
interp.failed = False
if interp.runsource(source, "<stdin>", "single"):  # a compound statement: the REPL asks for more
    sys.stdout.write("... \n")
    interp.runsource(source + "\n", "<stdin>", "single")
sys.stdout.flush()
failed = interp.failed
os.kill(os.getpid(), signal.SIGSTOP)
os._exit(1 if failed else 0)
"""
_MAX_PYTHON_HISTORY = 100
# The replayed history travels as one argv string, which Linux caps at 128 KiB (MAX_ARG_STRLEN):
# keep its JSON well under that, dropping the oldest inputs first.
_MAX_PYTHON_HISTORY_BYTES = 64 * 1024


def _replayed(history: list[str]) -> str:
    """The JSON of the inputs to replay: the most recent ones that fit the byte budget."""
    kept: list[str] = []
    size = 2
    for command in reversed(history[-_MAX_PYTHON_HISTORY:]):
        size += len(json.dumps(command).encode()) + 2
        if size > _MAX_PYTHON_HISTORY_BYTES:
            break
        kept.append(command)
    return json.dumps(kept[::-1])


class PythonEngine(_SandboxedEngine):
    """A Python REPL (``python3 -q``) whose inputs are evaluated in a sandbox.

    The screen starts as the arithmetic probe's (:func:`~neuralcomputer.eval.probes.arithmetic_prompt_frame`):
    the shell prompt, ``python3 -q``, then ``>>> ``. Each input runs in a fresh sandboxed
    ``python3 -I``, after the earlier successful inputs are replayed silently (at most the last 100),
    so assignments persist; leaving the REPL (``exit()``) is not emulated.

    Args:
        cols, rows: the terminal grid, the model's.
        limits: the sandbox limits per input.
        max_caption_bytes: the model's caption limit in UTF-8 bytes (None: no limit).
    """

    name = "python"

    def __init__(self, cols: int = 80, rows: int = 24, limits: SandboxLimits | None = None,
                 max_caption_bytes: int | None = None) -> None:
        super().__init__(cols, rows, limits, max_caption_bytes)
        self.history: list[str] = []
        self._fresh_screen(f"{shell_prompt()}python3 -q\r\n{REPL}")

    def run(self, command: str) -> EngineResult:
        """Evaluate what the user typed at ``>>>`` and show what the REPL prints."""
        self.check(command)
        argv = ["/usr/bin/python3", "-I", "-u", "-c", _PYTHON_RUNNER, _replayed(self.history), command]
        result = self.sandbox.run(argv, tty=(self.cols, self.rows))
        # The runner reached its end (its stop) and the input did not raise: replay it from now on.
        if result.stop_cwd is not None and result.exit_code == 0:
            self.history.append(command)
        return self._show(command, result.stdout, REPL, exit_code=result.exit_code, timed_out=result.timed_out,
                          truncated=result.truncated, elapsed_s=result.elapsed_s)

    def reset(self) -> None:
        """A fresh interpreter (no history), sandbox and screen."""
        self.sandbox.reset()
        self.history.clear()
        self._fresh_screen(f"{shell_prompt()}python3 -q\r\n{REPL}")


LLM_PROMPT = """You are emulating a Linux terminal ({cols} columns x {rows} rows, bash, user {user}).
The screen currently shows:
<screen>
{screen}
</screen>
The user types `{command}` and presses Enter.
Reply with exactly the text the command prints, nothing else: no prompt, no explanation, no
code fences. Reply with nothing if it prints nothing."""


class LLMEngine(_ScreenEngine):
    """An external language model decides what a command prints: the interface, not a client.

    ``client`` gets one prompt string (:data:`LLM_PROMPT` filled with the screen and the command)
    and returns the model's reply; the reply is cleaned (code fences, an echoed command line or a
    trailing prompt are removed) and printed on the terminal like real output. The project never
    calls a network service itself: pass whatever client you trust.

    Args:
        client: ``prompt -> reply``.
        cols, rows: the terminal grid, the model's.
        max_caption_bytes: the model's caption limit in UTF-8 bytes (None: no limit).
    """

    name = "llm"

    def __init__(self, client: Callable[[str], str] | None = None, cols: int = 80, rows: int = 24,
                 max_caption_bytes: int | None = None) -> None:
        if client is None or not callable(client):
            raise NCError("the llm engine needs client=<callable taking a prompt and returning the reply>")
        super().__init__(cols, rows, max_caption_bytes)
        self.client = client
        self._fresh_screen(shell_prompt())

    def build_prompt(self, command: str) -> str:
        """The prompt sent to the client for ``command`` (the current screen and the command)."""
        return LLM_PROMPT.format(cols=self.cols, rows=self.rows, user=shell_prompt().split("@")[0],
                                 screen=self.screen_text.rstrip(), command=command)

    def parse_reply(self, command: str, reply: str) -> str:
        """The output text in a reply: fences, an echoed command line and a trailing prompt dropped."""
        text = reply.replace("\r\n", "\n").strip("\n")
        fenced = re.fullmatch(r"\s*```[^\n]*\n(.*?)\n?```\s*", text, re.DOTALL)
        if fenced:
            text = fenced.group(1)
        lines = text.split("\n")
        prompt = shell_prompt().rstrip()
        if lines and lines[0].strip() in (command.strip(), f"$ {command.strip()}", f"{prompt} {command.strip()}"):
            lines = lines[1:]
        if lines and lines[-1].strip() in (prompt, "$"):
            lines = lines[:-1]
        return "\n".join(lines) + ("\n" if lines and any(lines) else "")

    def run(self, command: str) -> EngineResult:
        """Ask the client what ``command`` prints and show it on the terminal."""
        self.check(command)
        start = time.perf_counter()
        reply = self.client(self.build_prompt(command))
        if not isinstance(reply, str):
            raise NCError(f"llm client: expected a str reply, got {type(reply).__name__}")
        output = self.parse_reply(command, reply)
        return self._show(command, output, shell_prompt(), exit_code=None, elapsed_s=time.perf_counter() - start)

    def reset(self) -> None:
        """A fresh screen with one prompt."""
        self._fresh_screen(shell_prompt())

    def close(self) -> None:
        """Nothing to release: the client belongs to the caller."""


ENGINES: dict[str, Callable[..., ReasoningEngine]] = {
    "shell": ShellEngine,
    "python": PythonEngine,
    "llm": LLMEngine,
}


def make_engine(name: str, **kwargs: Any) -> ReasoningEngine:
    """Build a reasoning engine by name (``shell``, ``python`` or ``llm``) with its keyword arguments.

    Raises:
        NCError: an unknown name, or bubblewrap missing for the sandboxed engines.
    """
    if name not in ENGINES:
        raise NCError(f"engine {name!r}: expected one of {', '.join(ENGINES)}")
    return ENGINES[name](**kwargs)


