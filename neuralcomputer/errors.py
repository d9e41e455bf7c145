"""The project's own error types: every bad input becomes one clear line, never a traceback."""

from __future__ import annotations

from os import PathLike


class NCError(Exception):
    """Base class of every error the project raises on purpose (bad input, bad config)."""


class CastError(NCError):
    """A recording (asciicast) that cannot be read or rendered.

    The message names the file, the place (line number, or event index), and what was expected,
    e.g. ``demo.cast:12: event time 3.1 is before the previous event (4.0)``.
    """

    def __init__(self, path: str | PathLike[str] | None, line: int | None, problem: str) -> None:
        self.path = str(path) if path is not None else "<input>"
        self.line = line
        self.problem = problem
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {problem}")
