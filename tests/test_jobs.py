"""Interrupted data jobs leave nothing behind (issue 18): owned temp folders and their reclaiming,
and real ``ncomp data record`` / ``render`` jobs stopped by SIGINT, SIGTERM or SIGKILL (the desktop
collection's are in tests/test_desktop.py), plus the random-moment stress test."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from neuralcomputer.data.jobs import OWNER_FILE, claim_dir, reclaim_dead, release_dir
from tests.helpers import real_cast_paths
from tests.stress_interrupts import run_trial, run_trials

_CLAIM_AND_WAIT = textwrap.dedent("""
    import sys, time
    from neuralcomputer.data.jobs import claim_dir
    claim_dir(sys.argv[1])
    print("claimed", flush=True)
    time.sleep(600)
""")


def _owner(path: Path) -> subprocess.Popen:
    """A separate process that claims ``path`` and lives until killed."""
    path.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", _CLAIM_AND_WAIT, str(path)], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"claimed\n"
    return proc


def test_a_long_tmpdir_still_gets_a_worker_pool(tmp_path: Path, monkeypatch) -> None:
    """A forkserver listens on a socket under TMPDIR, and socket paths hold 107 bytes: under a long
    TMPDIR (pytest-xdist's per-worker folders made every pooled job fail with "AF_UNIX path too long")
    the pool starts its workers by spawning instead, and a real two-worker recording succeeds."""
    import tempfile

    from neuralcomputer.data.jobs import pool_context

    deep = tmp_path / ("d" * 90)
    deep.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(deep))
    assert pool_context().get_start_method() == "spawn"
    monkeypatch.setattr(tempfile, "tempdir", "/tmp")
    assert pool_context().get_start_method() in ("forkserver", "spawn")  # forkserver where the OS has it
    out = tmp_path / "casts"
    result = subprocess.run([sys.executable, "-m", "neuralcomputer.cli", "data", "record", "--generator", "basic",
                             "--count", "2", "--seed", "0", "--out", str(out), "--workers", "2"],
                            env={**os.environ, "TMPDIR": str(deep)}, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(list(out.glob("*.cast"))) == 2 and not any(deep.iterdir())  # nothing left in TMPDIR


def test_reclaim_removes_only_folders_of_dead_owners(tmp_path: Path) -> None:
    live, dead = _owner(tmp_path / "nc-live"), _owner(tmp_path / "nc-dead")
    try:
        dead.kill()
        dead.wait()
        (tmp_path / "nc-dead" / "home").mkdir()
        os.chmod(tmp_path / "nc-dead", 0o500)  # read-only, as sessions leave some (git objects, chmod)
        (tmp_path / "nc-unowned").mkdir()      # no owner file: made by someone else, or being made
        mine = tmp_path / "nc-mine"
        mine.mkdir()
        fd = claim_dir(mine)                   # this process: alive
        removed = reclaim_dead(tmp_path, "nc-")
        assert removed == [tmp_path / "nc-dead"]
        assert sorted(p.name for p in tmp_path.iterdir()) == ["nc-live", "nc-mine", "nc-unowned"]
        assert (mine / OWNER_FILE).read_text() == f"{os.getpid()}\n"
        release_dir(fd)                        # the owner let go (as at its exit): now it is dead
        assert reclaim_dead(tmp_path, "nc-") == [mine]
    finally:
        live.kill()
        live.wait()
    assert reclaim_dead(tmp_path, "nc-") == [tmp_path / "nc-live"]


def test_reclaim_of_folders_from_before_owner_files(tmp_path: Path) -> None:
    old, new = tmp_path / "nc-old", tmp_path / "nc-new"
    for folder in (old, new):
        (folder / "etc").mkdir(parents=True)
    an_hour_ago = time.time() - 3700
    os.utime(old / "etc", (an_hour_ago, an_hour_ago))
    os.utime(old, (an_hour_ago, an_hour_ago))
    assert reclaim_dead(tmp_path, "nc-", looks_ours=lambda p: (p / "etc").is_dir()) == [old]
    assert new.exists()  # may be a live run of an older version: left alone for an hour


def _check(trial, limit: float) -> None:
    assert not trial.error, trial
    assert trial.running, f"nothing was running when the signal came: {trial}"
    assert trial.exited and trial.exit_s <= limit, trial
    assert not trial.processes, f"left running: {trial.processes}"
    assert not trial.folders, f"left in TMPDIR: {trial.folders}"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_record_stops_within_5s_leaving_nothing(sig: int, tmp_path: Path) -> None:
    # 2 workers recording real-time sessions, 2 s in: shells running, folders made, sessions queued
    trial = run_trial("record", sig, 2.0, tmp_path)
    _check(trial, 5.0)


def test_record_killed_workers_leave_and_next_run_reclaims(tmp_path: Path) -> None:
    trial = run_trial("record", signal.SIGKILL, 2.0, tmp_path)
    _check(trial, 10.0)  # workers and shells gone within 10 s; folders reclaimed by the next run
    assert trial.gone_s <= 10.0


@pytest.mark.skipif(not real_cast_paths(), reason="real casts not found (set NC_REAL_CASTS)")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_render_stops_leaving_no_worker(sig: int, tmp_path: Path) -> None:
    trial = run_trial("render", sig, 1.5, tmp_path)
    _check(trial, 5.0 if sig == signal.SIGTERM else 10.0)


@pytest.mark.slow
@pytest.mark.skipif(not all(shutil.which(p) for p in ("Xvfb", "xfce4-session", "dbus-daemon")),
                    reason="Xvfb / XFCE4 not installed (make setup installs them)")
def test_stress_interrupts(tmp_path: Path) -> None:
    """Random moments, every job and signal in turn (NC_STRESS_TRIALS, default 3; the 20-trial run is
    ``python -m tests.stress_interrupts --trials 20``)."""
    trials = int(os.environ.get("NC_STRESS_TRIALS", "3"))
    jobs = ["collect-desktop", "record", "collect-desktop-1", "render"] if real_cast_paths() else \
        ["collect-desktop", "record", "collect-desktop-1"]
    bad = [t for t in run_trials(trials, int(time.time()), jobs, tmp_path) if not t.ok]
    assert not bad, bad
