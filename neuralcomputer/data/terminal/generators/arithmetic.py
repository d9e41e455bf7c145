"""The arithmetic probe: ``python-math`` sessions and the fixed held-out problem pool.

The paper probes whether a neural computer can *compute*: the user types an expression into a
Python REPL and the model must render the answer. Training sessions draw problems with
:func:`train_problem`, which never returns one of the 1,000 :func:`heldout_problems`, so the
probe measures generalisation, not recall.

Difficulty levels:

1. single-digit ``+ - *``
2. two-digit ``+ - *`` and ``//`` or ``/``
3. three-digit ``+ - * /``
4. modulo
5. small powers
6. compound expressions with parentheses

Answers are what the REPL prints (``repr`` of the value), computed by a tiny evaluator over the
expression's syntax tree, which accepts only integer literals and arithmetic operators.
"""

from __future__ import annotations

import ast
import functools
import operator
import random
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass

from neuralcomputer.data.terminal.generators._common import run, session_rng, think
from neuralcomputer.data.terminal.session import REPL_PROMPT, SessionScript, Step

LEVELS = (1, 2, 3, 4, 5, 6)
HELDOUT_SIZE = 1000
# Levels 1 and 5 have only a few hundred distinct problems, so they hold out fewer (about half of
# each) and keep the rest for training; the other levels share what remains.
HELDOUT_QUOTA = {1: 150, 2: 175, 3: 175, 4: 175, 5: 150, 6: 175}
_HELDOUT_SEED = "arithmetic-heldout-v1"

_BINARY_OPS: dict[type[ast.operator], Callable[[object, object], object]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}


@dataclass(frozen=True)
class Problem:
    """One arithmetic problem.

    Attributes:
        expression: what the user types, e.g. ``"(12 + 7) * 3"``.
        answer: exactly what the Python REPL prints for it, e.g. ``"57"`` or ``"3.5"``.
        level: difficulty level, 1 (single digits) to 6 (compound expressions).
    """

    expression: str
    answer: str
    level: int


def normalise(expression: str) -> str:
    """The expression without whitespace: ``"3+4"`` and ``"3 + 4"`` are the same problem."""
    return re.sub(r"\s+", "", expression)


def evaluate(expression: str) -> str:
    """What the Python REPL prints for an integer arithmetic ``expression``.

    Only integer literals, ``+ - * / // % **``, unary minus and parentheses are accepted; the
    exponent is bounded so a hostile expression cannot exhaust memory.

    Raises:
        ValueError: anything else, or a division by zero.
    """

    def value(node: ast.AST) -> int | float:
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            inner = value(node.operand)
            return -inner if isinstance(node.op, ast.USub) else inner
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY_OPS:
            left, right = value(node.left), value(node.right)
            if isinstance(node.op, ast.Pow) and abs(right) > 64:
                raise ValueError(f"exponent {right} is too large")
            try:
                return _BINARY_OPS[type(node.op)](left, right)  # type: ignore[return-value]
            except ZeroDivisionError as exc:
                raise ValueError(f"{expression!r} divides by zero") from exc
        raise ValueError(f"{expression!r} is not plain integer arithmetic")

    tree = ast.parse(expression, mode="eval")
    return repr(value(tree.body))


def _problem(expression: str, level: int) -> Problem:
    return Problem(expression=expression, answer=evaluate(expression), level=level)


def _draw(rng: random.Random, level: int) -> str:
    """A random expression of ``level`` (may repeat; callers de-duplicate)."""
    if level == 1:
        return f"{rng.randint(0, 9)} {rng.choice('+-*')} {rng.randint(0, 9)}"
    if level == 2:
        op = rng.choice(("+", "-", "*", "//", "/"))
        return f"{rng.randint(10, 99)} {op} {rng.randint(10, 99)}"
    if level == 3:
        return f"{rng.randint(100, 999)} {rng.choice('+-*/')} {rng.randint(100, 999)}"
    if level == 4:
        return f"{rng.randint(10, 999)} % {rng.randint(2, 50)}"
    if level == 5:
        kind = rng.random()
        if kind < 0.45:
            return f"{rng.randint(2, 99)} ** 2"
        if kind < 0.7:
            return f"{rng.randint(2, 40)} ** 3"
        if kind < 0.8:
            return f"{rng.randint(2, 15)} ** {rng.randint(4, 5)}"
        if kind < 0.9:
            return f"2 ** {rng.randint(5, 20)}"
        return f"(-{rng.randint(2, 12)}) ** {rng.randint(2, 5)}"
    if level == 6:
        a, b, c, d = (rng.randint(2, 30) for _ in range(4))
        template = rng.choice((
            f"({a} + {b}) * {c}",
            f"{a} * ({b} - {c})",
            f"({a} - {b}) * ({c} + {d})",
            f"({a} + {b}) // {c}",
            f"{a} + {b} * {c} - {d}",
            f"({a} * {b}) % {c}",
            f"({a} + {b}) ** 2",
            f"({a} * {b} + {c}) // {d}",
            f"{a * 10} - ({b} + {c}) * {d}",
        ))
        return template
    raise ValueError(f"level must be one of {LEVELS}, got {level}")


@functools.lru_cache(maxsize=1)
def _heldout() -> tuple[Problem, ...]:
    rng = random.Random(_HELDOUT_SEED)
    problems: list[Problem] = []
    seen: set[str] = set()
    for level in LEVELS:
        taken = 0
        while taken < HELDOUT_QUOTA[level]:
            expression = _draw(rng, level)
            key = normalise(expression)
            if key in seen:
                continue
            seen.add(key)
            problems.append(_problem(expression, level))
            taken += 1
    return tuple(problems)


@functools.lru_cache(maxsize=1)
def _heldout_keys() -> frozenset[str]:
    return frozenset(normalise(p.expression) for p in _heldout())


def heldout_problems() -> list[Problem]:
    """The fixed held-out pool: exactly 1,000 unique problems over all six levels.

    Drawn from a constant seed, so every machine and run gets the same pool; never used by
    training sessions.
    """
    return list(_heldout())


def is_heldout(expression: str) -> bool:
    """Whether ``expression`` (in any spacing) belongs to the held-out pool."""
    return normalise(expression) in _heldout_keys()


def train_problem(rng: random.Random, level: int | None = None) -> Problem:
    """A random training problem of ``level`` (random level if None), never a held-out one."""
    level = rng.choice(LEVELS) if level is None else level
    while True:
        expression = _draw(rng, level)
        if not is_heldout(expression):
            return _problem(expression, level)


_INTENTS = {
    "+": "add two numbers",
    "-": "subtract one number from another",
    "*": "multiply two numbers",
    "/": "divide one number by another",
    "//": "divide two numbers without remainder",
    "%": "take the remainder of a division",
    "**": "raise a number to a power",
}


def _intent(problem: Problem) -> str:
    if problem.level == 6:
        return "evaluate an expression with parentheses"
    for symbol in ("**", "//", "%", "/", "*", "+"):
        if f" {symbol} " in problem.expression:
            return _INTENTS[symbol]
    return _INTENTS["-"]


def script_for_problems(problems: list[Problem], seed: int, index: int,
                        generator: str = "python-math") -> SessionScript:
    """A REPL session that types ``problems`` one by one (also used to record held-out probes)."""
    rng = session_rng(f"{generator}-typing", seed, index)
    steps: list[Step] = [run(rng, "python3 -q", "start the Python interpreter", expect=REPL_PROMPT)]
    for problem in problems:
        steps.append(run(rng, problem.expression, _intent(problem), expect=REPL_PROMPT,
                         pause=think(rng, 0.5, 2.0)))
    steps.append(run(rng, "exit()", "leave the interpreter"))
    return SessionScript(
        generator=generator, seed=seed, index=index,
        task="do some arithmetic in the Python interpreter",
        steps=steps,
        extra={"problems": [asdict(p) for p in problems], "expect_output": [p.answer for p in problems]},
    )


def python_math(seed: int, index: int) -> SessionScript:
    """``python-math``: 3-6 training problems typed into ``python3 -q``, each answered by Python."""
    rng = session_rng("python-math", seed, index)
    problems = [train_problem(rng) for _ in range(rng.randint(3, 6))]
    return script_for_problems(problems, seed, index)
