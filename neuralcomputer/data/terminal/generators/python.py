"""``python`` sessions: write small scripts, run them, read real tracebacks, try one-liners.

Scripts are either typed into the terminal with a quoted heredoc (``cat > f.py <<'EOF'``) or
already present as files and shown with ``cat``. Some contain a deliberate bug (ZeroDivisionError,
NameError, IndexError, KeyError, SyntaxError) so that real Python tracebacks appear on screen;
a NameError is sometimes fixed with ``sed`` and the script run again.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from neuralcomputer.data.terminal.generators._common import (
    FIRST_NAMES,
    FRUITS,
    WORDS,
    pick,
    run,
    session_rng,
    think,
)
from neuralcomputer.data.terminal.session import REPL_PROMPT, SessionScript, Step


@dataclass(frozen=True)
class PyScript:
    """A script a session writes or finds, and what running it shows.

    Attributes:
        name: file name (``squares.py``).
        code: the source, newline-terminated, indented with spaces (a tab would trigger completion
            when typed into bash).
        expect: strings its output must contain (last line of a traceback for buggy scripts).
        intent: what running it is for.
        fix: optional ``(sed command, expected output after the fix)`` that repairs a bug.
    """

    name: str
    code: str
    expect: tuple[str, ...]
    intent: str
    fix: tuple[str, str] | None = None


def _squares(rng: random.Random) -> PyScript:
    n = rng.randint(3, 8)
    code = f'n = {n}\nfor i in range(1, n + 1):\n    print(f"{{i}} squared is {{i * i}}")\n'
    return PyScript("squares.py", code, (f"{n} squared is {n * n}",), "run a loop that prints squares")


def _greet(rng: random.Random) -> PyScript:
    names = pick(rng, FIRST_NAMES, rng.randint(2, 4))
    code = (
        "def greet(name):\n    return f\"Hello, {name.title()}.\"\n\n\n"
        f"for name in {names!r}:\n    print(greet(name))\n"
    )
    return PyScript("greet.py", code, (f"Hello, {names[-1].title()}.",), "run a script with a function")


def _evens(rng: random.Random) -> PyScript:
    nums = [rng.randint(1, 60) for _ in range(rng.randint(5, 9))]
    evens = [n for n in nums if n % 2 == 0]
    code = (
        f"nums = {nums}\nevens = [n for n in nums if n % 2 == 0]\n"
        'print("evens:", evens)\nprint("total:", sum(evens))\n'
    )
    return PyScript("evens.py", code, (f"total: {sum(evens)}",), "filter a list with a comprehension")


def _prices(rng: random.Random) -> PyScript:
    items = {fruit: round(rng.uniform(0.2, 6.0), 2) for fruit in pick(rng, FRUITS, rng.randint(3, 5))}
    code = (
        f"prices = {items!r}\n"
        "for item, price in prices.items():\n"
        '    print(f"{item:<10}{price:>8.2f}")\n'
        "print(f\"{'total':<10}{sum(prices.values()):>8.2f}\")\n"
    )
    total = f"{'total':<10}{sum(items.values()):>8.2f}"
    return PyScript("prices.py", code, (total,), "print a formatted price table")


def _wordcount(rng: random.Random) -> PyScript:
    vocab = pick(rng, WORDS, 4)
    text = " ".join(rng.choice(vocab) for _ in range(rng.randint(8, 14)))
    top_word, top_n = sorted(Counter(text.split()).items(), key=lambda kv: (-kv[1], kv[0]))[0]
    code = (
        f'text = "{text}"\ncounts = {{}}\nfor word in text.split():\n'
        "    counts[word] = counts.get(word, 0) + 1\n"
        "for word, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:3]:\n"
        "    print(word, n)\n"
    )
    return PyScript("wordcount.py", code, (f"{top_word} {top_n}",), "count words with a dictionary")


def _fib(rng: random.Random) -> PyScript:
    n = rng.randint(6, 15)
    a, b, seq = 0, 1, []
    for _ in range(n):
        seq.append(a)
        a, b = b, a + b
    code = (
        "def fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n\n\n"
        f"print([fib(i) for i in range({n})])\n"
    )
    return PyScript("fib.py", code, (str(seq),), "compute Fibonacci numbers")


def _zero_division(rng: random.Random) -> PyScript:
    nums = [rng.randint(1, 20) for _ in range(rng.randint(2, 5))]
    code = (
        "def average(values):\n    return sum(values) / len(values)\n\n\n"
        f"print(average({nums}))\nprint(average([]))\n"
    )
    return PyScript("average.py", code, (repr(sum(nums) / len(nums)), "ZeroDivisionError: division by zero"),
                    "run a script that divides by zero")


def _name_error(rng: random.Random) -> PyScript:
    prices = [rng.randint(1, 30) for _ in range(rng.randint(3, 5))]
    code = f'total = 0\nfor price in {prices}:\n    total += price\nprint("total:", totl)\n'
    return PyScript("total.py", code, ("NameError: name 'totl' is not defined",), "run a script with a typo",
                    fix=("sed -i 's/totl/total/' total.py", f"total: {sum(prices)}"))


def _index_error(rng: random.Random) -> PyScript:
    colors = pick(rng, ("red", "green", "blue", "cyan", "magenta", "black"), rng.randint(2, 4))
    code = f"colors = {colors!r}\nfor i in range({len(colors) + 1}):\n    print(i, colors[i])\n"
    return PyScript("colors.py", code, (f"{len(colors) - 1} {colors[-1]}", "IndexError: list index out of range"),
                    "run a loop that goes one step too far")


def _key_error(rng: random.Random) -> PyScript:
    people = pick(rng, FIRST_NAMES, 4)
    ages = {name: rng.randint(18, 80) for name in people[:3]}
    missing = people[3]
    code = f"ages = {ages!r}\nprint(ages[{people[0]!r}])\nprint(ages[{missing!r}])\n"
    return PyScript("ages.py", code, (str(ages[people[0]]), f"KeyError: '{missing}'"),
                    "look up a missing dictionary key")


def _syntax_error(rng: random.Random) -> PyScript:
    w, h = rng.randint(2, 12), rng.randint(2, 12)
    if rng.random() < 0.5:
        code = f"def area(w, h)\n    return w * h\n\n\nprint(area({w}, {h}))\n"
        expected = "SyntaxError: expected ':'"
    else:
        code = f"def area(w, h):\n    return w * h\n\n\nprint(area({w}, {h})\n"
        expected = "SyntaxError: '(' was never closed"
    return PyScript("area.py", code, (expected,), "run a script with a syntax error")


_GOOD: tuple[Callable[[random.Random], PyScript], ...] = (_squares, _greet, _evens, _prices, _wordcount, _fib)
_BAD: tuple[Callable[[random.Random], PyScript], ...] = (
    _zero_division, _name_error, _index_error, _key_error, _syntax_error)


def _one_liner(rng: random.Random) -> tuple[str, str, str]:
    """(command, intent, expected output) of a ``python3 -c`` one-liner."""
    n = rng.randint(10, 200)
    word = rng.choice(WORDS)
    choices = (
        (f'python3 -c "print(sum(range(1, {n + 1})))"', "add up a range of numbers", str(n * (n + 1) // 2)),
        (f"python3 -c \"print('{word}'.upper())\"", "uppercase a word", word.upper()),
        (f'python3 -c "print(len(\'{word}\' * {n % 7 + 2}))"', "measure a repeated string",
         str(len(word) * (n % 7 + 2))),
        (f'python3 -c "import math; print(math.factorial({n % 12 + 3}))"', "compute a factorial",
         str(math.factorial(n % 12 + 3))),
    )
    return rng.choice(choices)


def _repl_lines(rng: random.Random) -> list[tuple[str, str, str]]:
    """One or two ``(line, intent, what the REPL prints)`` to try in ``python3 -q``."""
    nums = [rng.randint(1, 99) for _ in range(rng.randint(3, 6))]
    words = pick(rng, WORDS, 3)
    choices = [
        (f"sorted({nums})", "sort a list of numbers", str(sorted(nums))),
        (f"max({nums})", "find the largest number", str(max(nums))),
        (f"sum({nums}) / {len(nums)}", "average a few numbers", repr(sum(nums) / len(nums))),
        (f'"-".join({words!r})', "join words with dashes", repr("-".join(words))),
        (f"'{words[0]}'[::-1]", "reverse a word", repr(words[0][::-1])),
        (f"len('{' '.join(words)}'.split())", "count the words in a phrase", "3"),
    ]
    return rng.sample(choices, rng.randint(1, 2))


def python(seed: int, index: int) -> SessionScript:
    """Write and run one or two small Python scripts, some buggy, plus one-liners (3-8 steps)."""
    rng = session_rng("python", seed, index)
    makers = list(_GOOD + _BAD)
    first = rng.choice(_BAD if rng.random() < 0.5 else _GOOD)
    chosen = [first]
    if rng.random() < 0.35:
        chosen.append(rng.choice([m for m in makers if m is not first]))
    world: dict[str, str] = {}
    steps: list[Step] = []
    expect: list[str] = []
    names: list[str] = []
    typed_any = False
    for maker in chosen:
        script = maker(rng)
        # worst case: ls + cat + run + fix + rerun, and one more step after the loop
        if len(steps) + 5 > 7:
            break
        # only one short script is typed: a 6-line script already takes ~15 s at human speed
        if not typed_any and len(script.code) <= 120 and rng.random() < 0.7:
            # typed into a heredoc; the command line is the whole heredoc, newlines included
            heredoc = f"cat > {script.name} <<'EOF'\n{script.code}EOF"
            steps.append(Step(keys=heredoc.replace("\n", "\r") + "\r", intent="write a small Python script",
                              command=heredoc, pause=think(rng)))
            typed_any = True
        else:
            world[script.name] = script.code
            if not steps:
                steps.append(run(rng, rng.choice(("ls", "ls -l")), "see which scripts are here"))
            steps.append(run(rng, f"cat {script.name}", "read the script"))
        steps.append(run(rng, f"python3 {script.name}", script.intent))
        names.append(script.name)
        expect.extend(script.expect)
        if script.fix and rng.random() < 0.7:
            sed, after = script.fix
            steps.append(run(rng, sed, "fix the typo in place"))
            steps.append(run(rng, f"python3 {script.name}", "run the fixed script"))
            expect.append(after)
    if len(steps) <= 4 and rng.random() < 0.4:
        steps.append(run(rng, "python3 -q", "open the Python interpreter", expect=REPL_PROMPT))
        for line, intent, output in _repl_lines(rng):
            steps.append(run(rng, line, intent, expect=REPL_PROMPT))
            expect.append(output)
        steps.append(run(rng, "exit()", "leave the interpreter"))
    elif len(steps) < 3 or (len(steps) < 8 and rng.random() < 0.4):
        command, intent, output = _one_liner(rng)
        steps.append(run(rng, command, intent))
        expect.append(output)
    if len(steps) < 8 and rng.random() < 0.25:
        steps.append(run(rng, "ls", "list the files"))
    task = "write and run small Python scripts" if typed_any else "run and debug small Python scripts"
    return SessionScript(
        generator="python", seed=seed, index=index, task=task, steps=steps, files=world,
        extra={"expect_output": expect, "scripts": names},
    )
