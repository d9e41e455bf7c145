"""Authored terminal sessions: what a generator writes and the recorder plays.

A :class:`SessionScript` is a deterministic plan (files to create, keystrokes to type, what each
step means). The recorder runs it in a real shell in a pty and writes an asciicast; the plan's
structured intent travels in the cast header (key ``"x_neuralcomputer"``) and as ``m`` marker
events, so captions can later be built from it without an LLM.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Literal

WaitFor = Literal["prompt", "quiet"]

# The Python REPL's prompt: what the recorder waits for inside ``python3 -q``, what the arithmetic probe and
# the hybrid runtime's Python engine draw before an expression.
REPL_PROMPT = ">>> "


@dataclass(frozen=True)
class Step:
    """One user action in a session.

    Attributes:
        keys: the literal keystrokes to send, e.g. ``"ls -la\\r"`` (``\\r`` is Enter; control
            characters and escape sequences allowed, e.g. ``"\\x1b:wq\\r"`` in vim).
        intent: what the user means by it, in plain words without literal text
            ("list the files with details"); used for the semantic caption.
        command: the literal command line when the step runs a shell/REPL command, else ``""``.
        wait_for: ``"prompt"`` waits until the shell/REPL prompt is back; ``"quiet"`` waits until
            the program has been silent for a moment (TUIs, editors, pagers).
        pause: seconds of human "thinking" time before the step starts (virtual or real clock).
        expect: with ``wait_for="prompt"``, the prompt that means "ready" (e.g. ``">>> "`` inside
            a Python REPL); empty means the recorder's fixed shell prompt.
        hold: seconds to keep watching the screen once the step is ready, in real time on both
            recorder clocks, for programs that redraw by themselves (``top``); the virtual clock
            cannot skip that time because the redraws are what the session is about.
    """

    keys: str
    intent: str
    command: str = ""
    wait_for: WaitFor = "prompt"
    pause: float = 0.6
    expect: str = ""
    hold: float = 0.0


@dataclass(frozen=True)
class SessionScript:
    """A whole authored session, deterministic for (generator, seed, index).

    Attributes:
        generator: name of the generator that made it (``basic``, ``git``, ``python-math`` ...).
        seed, index: the session's RNG seed and its index within a ``record`` job.
        task: one sentence saying what the session is about, no literal text ("inspect a project").
        files: files to create (relative path -> content) in the working directory before start.
        steps: the actions, in order.
        extra: generator-specific structure (e.g. the arithmetic problems and their answers).
    """

    generator: str
    seed: int
    index: int
    task: str
    steps: list[Step]
    files: dict[str, str] = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        """The structured intent stored in the cast header (``x_neuralcomputer``)."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> SessionScript:
        """Rebuild a script from :meth:`to_json` output (e.g. a cast header, to re-record it).

        Keys that are not fields (the recorder's ``timing`` and ``recorder``) are ignored.
        """
        steps = [Step(**{k: v for k, v in step.items() if k in _STEP_FIELDS}) for step in data["steps"]]
        return cls(
            generator=data["generator"],
            seed=data["seed"],
            index=data["index"],
            task=data["task"],
            steps=steps,
            files=dict(data.get("files", {})),
            extra=dict(data.get("extra", {})),
        )


_STEP_FIELDS = frozenset(f.name for f in fields(Step))
