"""Session generators: determinism, structure, the arithmetic pools, and one real recording each."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from neuralcomputer.data.terminal.asciicast import read_cast
from neuralcomputer.data.terminal.generators import GENERATORS, list_generators
from neuralcomputer.data.terminal.generators.arithmetic import (
    HELDOUT_SIZE,
    LEVELS,
    evaluate,
    heldout_problems,
    is_heldout,
    normalise,
    train_problem,
)
from neuralcomputer.data.terminal.generators.interactive import ALT_SCREEN
from neuralcomputer.data.terminal.generators.python import _BAD, _GOOD
from neuralcomputer.data.terminal.recorder import record_session
from neuralcomputer.data.terminal.session import SessionScript

EXPECTED = {"basic", "files", "text", "git", "python-math", "python", "interactive"}


def as_json(name: str, seed: int, index: int) -> str:
    return json.dumps(GENERATORS[name](seed, index).to_json(), sort_keys=True)


def test_registry() -> None:
    assert set(list_generators()) == EXPECTED == set(GENERATORS)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_deterministic_and_varied(name: str) -> None:
    assert as_json(name, 7, 3) == as_json(name, 7, 3)
    scripts = {as_json(name, 7, i) for i in range(12)}
    assert len(scripts) == 12  # every index differs
    assert as_json(name, 7, 3) != as_json(name, 8, 3)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_script_structure(name: str) -> None:
    for index in range(40):
        s = GENERATORS[name](0, index)
        assert (s.generator, s.seed, s.index) == (name, 0, index)
        assert 3 <= len(s.steps) <= 8, (index, len(s.steps))
        assert s.task and '"' not in s.task
        for step in s.steps:
            assert step.intent and '"' not in step.intent and "`" not in step.intent
            assert step.wait_for in ("prompt", "quiet") and step.pause >= 0
            if step.command:
                assert step.keys == step.command.replace("\n", "\r") + "\r"
                assert " " not in step.command or step.command not in step.intent
        assert SessionScript.from_json(json.loads(json.dumps(s.to_json()))) == s


def test_subprocess_free_generation_is_fast() -> None:
    # generators are pure functions; 7 x 200 scripts should take well under a second or two
    for name in GENERATORS:
        for index in range(200):
            GENERATORS[name](1, index)


def test_interactive_covers_every_tool() -> None:
    tools = [GENERATORS["interactive"](0, i).extra["tool"] for i in range(4)]
    assert sorted(tools) == ["less", "nano", "top", "vim"]


# -- arithmetic ---------------------------------------------------------------------------


def test_heldout_pool() -> None:
    pool = heldout_problems()
    assert len(pool) == HELDOUT_SIZE == 1000
    assert pool == heldout_problems()  # fixed
    assert len({normalise(p.expression) for p in pool}) == 1000
    per_level = {level: sum(p.level == level for p in pool) for level in LEVELS}
    assert min(per_level.values()) >= 140 and max(per_level.values()) <= 190, per_level
    for p in pool:
        assert p.answer == repr(eval(p.expression, {"__builtins__": {}})), p  # the reference: real Python


def test_train_problems_never_heldout() -> None:
    heldout = {normalise(p.expression) for p in heldout_problems()}
    rng = random.Random(0)
    draws = [train_problem(rng) for _ in range(2000)]
    assert not heldout & {normalise(p.expression) for p in draws}
    assert {p.level for p in draws} == set(LEVELS)
    for p in draws[:300]:
        assert p.answer == repr(eval(p.expression, {"__builtins__": {}}))
    assert all(train_problem(rng, level=1).level == 1 for _ in range(50))
    assert is_heldout(heldout_problems()[0].expression.replace(" ", ""))


def test_evaluate_rejects_non_arithmetic() -> None:
    assert evaluate("7 / 2") == "3.5" and evaluate("(-3) ** 3") == "-27" and evaluate("17 % 5") == "2"
    for bad in ("__import__('os')", "2 ** 1000000", "1 / 0", "x + 1", "1.5 + 2"):
        with pytest.raises(ValueError):
            evaluate(bad)


def test_python_math_extra_holds_problems() -> None:
    s = GENERATORS["python-math"](0, 0)
    problems = s.extra["problems"]
    assert 3 <= len(problems) <= 6
    typed = [step.command for step in s.steps[1:-1]]
    assert typed == [p["expression"] for p in problems]
    assert all(step.expect == ">>> " for step in s.steps[:-1])


# -- python scripts -------------------------------------------------------------------------


@pytest.mark.parametrize("maker", _GOOD + _BAD, ids=lambda m: m.__name__)
def test_python_script_templates_print_what_they_claim(maker, tmp_path: Path) -> None:
    script = maker(random.Random(5))
    path = tmp_path / script.name
    path.write_text(script.code)
    done = subprocess.run([sys.executable, script.name], cwd=tmp_path, capture_output=True, text=True)
    shown = done.stdout + done.stderr
    for expected in script.expect:
        assert expected in shown, (expected, shown)
    assert (done.returncode != 0) == (maker in _BAD)
    assert "\t" not in script.code and "!" not in script.code  # typing-safe in bash


# -- real recordings ------------------------------------------------------------------------


def first_index(name: str, predicate) -> int:
    return next(i for i in range(100) if predicate(GENERATORS[name](0, i)))


CASES = [
    ("basic", lambda s: any(st.command.startswith("echo ") for st in s.steps)),
    ("files", lambda s: True),
    ("text", lambda s: True),
    ("git", lambda s: True),
    ("python-math", lambda s: True),
    ("python", lambda s: any("Error" in x for x in s.extra["expect_output"])),
    ("interactive", lambda s: s.extra["tool"] == "vim"),
    ("interactive", lambda s: s.extra["tool"] == "less"),
    ("interactive", lambda s: s.extra["tool"] == "nano"),
]


@pytest.mark.parametrize(("name", "predicate"), CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_generator_records_real_session(name: str, predicate, tmp_path: Path) -> None:
    index = first_index(name, predicate)
    s = GENERATORS[name](0, index)
    result = record_session(s, tmp_path / f"{name}.cast")
    header, events = read_cast(result.path)
    text = "".join(e.data for e in events if e.code == "o")
    assert result.timeouts == 0, header.extra["x_neuralcomputer"]["timing"]
    assert result.exit_status == 0
    for expected in s.extra["expect_output"]:
        assert expected in text, (expected, text[-2000:])
    assert "@ncomp:~" in text  # the prompt
    assert len([e for e in events if e.code == "m"]) == len(s.steps)
    if name == "git":
        assert "Initialized empty Git repository" in text
    if name == "python-math":
        for problem in s.extra["problems"]:
            assert f"{problem['expression']}\r\n{problem['answer']}\r\n>>> " in text
    if name == "basic":
        echo = next(st.command for st in s.steps if st.command.startswith("echo "))
        assert echo.split('"')[1] in text
    if name == "interactive":
        assert ALT_SCREEN in text
    print(f"\n{name}#{index}: virtual {result.duration:.1f} s, wall {result.wall_time:.1f} s")
