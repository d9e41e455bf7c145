"""Session generators: deterministic authored terminal sessions, one registry entry each.

Every generator is a function ``(seed, index) -> SessionScript`` that depends only on its
arguments (seeded ``random.Random`` from a string, never ``hash()``), so a sharded recording job
produces exactly the scripts an unsharded one would.
"""

from __future__ import annotations

from collections.abc import Callable

from neuralcomputer.data.terminal.generators.arithmetic import python_math
from neuralcomputer.data.terminal.generators.git import git
from neuralcomputer.data.terminal.generators.interactive import interactive
from neuralcomputer.data.terminal.generators.python import python
from neuralcomputer.data.terminal.generators.shell import basic, files, text
from neuralcomputer.data.terminal.session import SessionScript

GENERATORS: dict[str, Callable[[int, int], SessionScript]] = {
    "basic": basic,
    "files": files,
    "text": text,
    "git": git,
    "python-math": python_math,
    "python": python,
    "interactive": interactive,
}


def list_generators() -> list[str]:
    """Names of the registered generators, in a stable order."""
    return list(GENERATORS)


__all__ = ["GENERATORS", "list_generators"]
