"""The pty recorder: real bash sessions, both clocks, timeouts, cleanup, batches and shards."""

from __future__ import annotations

import os
import random
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from neuralcomputer.data.terminal.asciicast import CastEvent, CastHeader, read_cast
from neuralcomputer.data.terminal.generators import GENERATORS
from neuralcomputer.data.terminal.recorder import (
    RecordResult,
    cast_name,
    record_many,
    record_session,
    split_keys,
    typing_delay,
)
from neuralcomputer.data.terminal.session import SessionScript, Step
from neuralcomputer.errors import NCError


@pytest.fixture(autouse=True)
def private_tmpdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Session directories go to a folder of this test, so leftovers can be checked."""
    folder = tmp_path / "sessions-tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def script(*steps: Step, files: dict[str, str] | None = None, index: int = 0) -> SessionScript:
    return SessionScript(generator="test", seed=0, index=index, task="test the recorder",
                         steps=list(steps), files=files or {})


def cmd(command: str, intent: str = "run a command", **kwargs: object) -> Step:
    return Step(keys=command + "\r", intent=intent, command=command, pause=0.2, **kwargs)  # type: ignore[arg-type]


def record(tmp_path: Path, s: SessionScript, **kwargs: object) -> tuple[CastHeader, list[CastEvent], RecordResult]:
    result = record_session(s, tmp_path / "out.cast", **kwargs)  # type: ignore[arg-type]
    header, events = read_cast(result.path)
    return header, events, result


def output(events: list[CastEvent]) -> str:
    return "".join(e.data for e in events if e.code == "o")


def test_split_keys_keeps_escape_sequences_whole() -> None:
    assert split_keys("ls\r") == ["l", "s", "\r"]
    assert split_keys("\x1b[A\x1bOBx") == ["\x1b[A", "\x1bOB", "x"]
    assert split_keys("\x1b:wq\r") == ["\x1b", ":", "w", "q", "\r"]


def test_typing_delay_is_seeded_and_human() -> None:
    def delays(seed: int) -> list[float]:
        rng = random.Random(seed)
        return [typing_delay(rng, prev, key) for prev, key in zip(" hello world", "hello world\r", strict=True)]

    assert delays(1) == delays(1)
    assert delays(1) != delays(2)
    many = [d for seed in range(30) for d in delays(seed)]
    assert all(0.04 <= d <= 1.5 for d in many)
    assert 0.06 <= sorted(many)[len(many) // 2] <= 0.2  # median: a fast but human typist


def test_echo_session_cast_structure(tmp_path: Path, private_tmpdir: Path) -> None:
    s = script(cmd("echo hello", "print a greeting"), cmd("pwd", "show the directory"))
    header, events, result = record(tmp_path, s)

    assert "hello" in output(events)
    assert result.exit_status == 0 and result.timeouts == 0
    assert result.n_events == len(events) and result.duration == pytest.approx(events[-1].time, abs=1e-5)
    assert header.command == "bash --norc --noprofile"
    assert header.env == {"SHELL": "/bin/bash", "TERM": "xterm-256color"}
    assert (header.width, header.height) == (80, 24)
    meta = header.extra["x_neuralcomputer"]
    assert SessionScript.from_json(meta) == s  # the header carries the whole script
    assert [e.data for e in events if e.code == "m"] == ["print a greeting", "show the directory"]
    typed = "".join(e.data for e in events if e.code == "i")
    assert typed.startswith("echo hello\rpwd\r")
    times = [e.time for e in events]
    assert times == sorted(times)
    timing = meta["timing"]
    assert len(timing) == 2 and not any(t["timed_out"] for t in timing)
    assert timing[0]["start"] <= timing[0]["keys_start"] <= timing[0]["end"] <= timing[1]["start"]
    first_key = next(e.time for e in events if e.code == "i")
    assert timing[0]["keys_start"] == pytest.approx(first_key, abs=1e-5)
    assert timing[0]["keys_start"] - timing[0]["start"] >= 0.2  # the step's thinking pause
    # the marker opens each step; the prompt is back by the step's end
    markers = [e.time for e in events if e.code == "m"]
    assert markers == pytest.approx([t["start"] for t in timing], abs=1e-5)
    assert list(private_tmpdir.iterdir()) == []  # HOME and workdir removed


def test_environment_size_and_files(tmp_path: Path) -> None:
    s = script(
        cmd("stty size"),
        cmd('echo "[$TZ|$LANG|$TERM|$PAGER|$EDITOR|$HISTFILE|${PYTHONSTARTUP-unset}]"'),
        cmd("cat sub/dir/data.txt"),
        cmd("git var GIT_AUTHOR_IDENT; git config init.defaultBranch"),
        files={"sub/dir/data.txt": "42 apples\n"},
    )
    _, events, _ = record(tmp_path, s, cols=100, rows=30)
    text = output(events)
    assert "30 100" in text
    assert "[UTC|C.UTF-8|xterm-256color|less|vim|/dev/null|unset]" in text
    assert "42 apples" in text
    assert "NC User" in text and "main" in text
    assert "\x1b[?2004h" not in text  # bracketed paste is off: no junk around prompts


def test_repl_prompt_and_quiet_waits(tmp_path: Path) -> None:
    s = script(
        cmd("python3 -q", expect=">>> "),
        cmd("6 * 7", expect=">>> "),
        cmd("exit()"),
        Step(keys="less -V\r", intent="show a version", command="less -V", wait_for="quiet", pause=0.1),
    )
    header, events, result = record(tmp_path, s)
    assert result.timeouts == 0
    assert "42\r\n>>> " in output(events)


def test_step_timeout_is_counted_and_processes_are_killed(tmp_path: Path) -> None:
    s = script(cmd("sleep 301.25 &"), cmd("sleep 302.5"), cmd("echo after"))
    start = time.monotonic()
    _, events, result = record(tmp_path, s, step_timeout=1.0)
    assert time.monotonic() - start < 15
    assert result.timeouts >= 1
    assert result.exit_status is not None
    leftovers = [p for p in psutil.process_iter(["cmdline"])
                 if any(arg in ("301.25", "302.5") for arg in (p.info["cmdline"] or []))]
    assert leftovers == []


def test_session_timeout_never_hangs(tmp_path: Path) -> None:
    # `cat` waits for input forever; the session deadline ends it
    s = script(cmd("cat"), cmd("echo never"), cmd("echo never again"))
    start = time.monotonic()
    _, _, result = record(tmp_path, s, step_timeout=30.0, session_timeout=2.0)
    assert time.monotonic() - start < 10
    assert result.timeouts >= 1


def test_real_clock_session(tmp_path: Path) -> None:
    s = script(Step(keys="echo real\r", intent="print a word", command="echo real", pause=0.5),
               cmd("date +%Y"))
    start = time.monotonic()
    header, events, result = record(tmp_path, s, clock="real")
    wall = time.monotonic() - start
    assert "real" in output(events)
    assert header.extra["x_neuralcomputer"]["recorder"]["clock"] == "real"
    # on the real clock the cast's duration is the wall time it took (give or take start/exit)
    assert 0.5 < result.duration <= wall + 0.1


def test_bad_arguments_and_bad_files_leave_nothing(tmp_path: Path, private_tmpdir: Path) -> None:
    with pytest.raises(NCError):
        record_session(script(cmd("ls")), tmp_path / "x.cast", clock="fast")  # type: ignore[arg-type]
    with pytest.raises(NCError):
        record_session(script(cmd("ls"), files={"../escape.txt": "x"}), tmp_path / "x.cast")
    assert not (tmp_path / "x.cast").exists()
    assert list(private_tmpdir.iterdir()) == []


def test_record_many_shards_match_unsharded(tmp_path: Path) -> None:
    whole, sharded = tmp_path / "whole", tmp_path / "sharded"
    a = record_many("python-math", 5, 3, whole, workers=2, progress=False)
    b0 = record_many("python-math", 5, 3, sharded, shard=(0, 2), progress=False)
    b1 = record_many("python-math", 5, 3, sharded, shard=(1, 2), progress=False)
    assert a.ok and b0.ok and b1.ok
    names = sorted(p.name for p in whole.iterdir())
    assert names == [cast_name("python-math", 3, i) for i in range(5)]
    assert sorted(p.name for p in sharded.iterdir()) == names
    assert [p.name for p in b0.recorded] == [names[0], names[2], names[4]]
    for name in names:  # same scripts, not just the same names
        meta_a = read_cast(whole / name)[0].extra["x_neuralcomputer"]
        meta_b = read_cast(sharded / name)[0].extra["x_neuralcomputer"]
        assert meta_a["steps"] == meta_b["steps"] and meta_a["extra"] == meta_b["extra"]
    again = record_many("python-math", 5, 3, whole, progress=False)  # resumable: nothing to do
    assert again.recorded == [] and len(again.skipped) == 5


def test_record_many_reports_failures_and_leaves_no_temp_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(seed: int, index: int) -> SessionScript:
        if index == 1:
            raise RuntimeError("generator bug")
        return script(cmd("echo ok"), index=index)

    monkeypatch.setitem(GENERATORS, "broken", broken)
    out = tmp_path / "out"
    out.mkdir()
    stale = out / f".{cast_name('broken', 0, 2)}.deadbeef.tmp"  # left by a killed earlier run
    stale.write_text("half")
    summary = record_many("broken", 3, 0, out, progress=False)
    assert [name for name, _ in summary.failed] == [cast_name("broken", 0, 1)]
    assert "generator bug" in summary.failed[0][1]
    assert sorted(p.name for p in out.iterdir()) == [cast_name("broken", 0, 0), cast_name("broken", 0, 2)]
    with pytest.raises(NCError):
        record_many("no-such-generator", 1, 0, out, progress=False)
    with pytest.raises(NCError):
        record_many("basic", 1, 0, out, shard=(2, 2), progress=False)


def test_virtual_clock_is_faster_than_real_time(tmp_path: Path) -> None:
    summary = record_many("basic", 10, 0, tmp_path, progress=False)
    assert summary.ok and len(summary.recorded) == 10
    print(f"\n10 basic sessions: wall {summary.wall_time:.1f} s, virtual {summary.virtual_duration:.1f} s")
    assert summary.wall_time < summary.virtual_duration  # generous: typically ~50x
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
