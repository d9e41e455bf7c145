"""Interrupt data jobs at random moments and check that nothing is left behind (issue 18).

    python -m tests.stress_interrupts --trials 20 [--seed S] [--jobs collect-desktop,record,render]

prints one JSON line per trial and a summary line; exit status 1 when a trial left something. Also
run, with fewer trials, by ``tests/test_jobs.py::test_stress_interrupts``.

A trial starts ``ncomp data <job>`` with its own TMPDIR and a marker in its environment, sends SIGINT
(to the whole process group, as Ctrl-C in a terminal), SIGTERM or SIGKILL at a random moment, then
checks: an interrupted job exits within 5 s, a killed job's processes within 10 s; no process is
left (the marker: the job and its workers; NC_DESKTOP_TAG: every desktop process; HOME in the
trial's TMPDIR: the recorded shells); no folder is left in its TMPDIR after an interrupt, nor after
the next run following a kill (it reclaims what the killed one left); no X display of its desktops
is left (a socket in /tmp/.X11-unix with no server behind it). Only the trial's own processes and
folders are looked at: other jobs may run on the machine meanwhile.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

INTERRUPT_LIMIT_S = 5.0  # SIGINT / SIGTERM: the job is gone, with everything it started, within this
KILL_LIMIT_S = 10.0      # SIGKILL: its workers and desktops are gone within this
REAL_CASTS = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "real-casts"


def job_command(job: str, out: Path) -> list[str]:
    """The ``ncomp`` arguments of a trial's job (each long enough to be interrupted mid-way)."""
    if job == "collect-desktop":
        return ["data", "collect-desktop", "--policy", "random-slow", "--episodes", "4", "--seconds", "20",
                "--size", "320x240", "--workers", "2", "--out", str(out)]
    if job == "collect-desktop-1":
        return ["data", "collect-desktop", "--policy", "random-slow", "--episodes", "2", "--seconds", "20",
                "--size", "320x240", "--workers", "1", "--out", str(out)]
    if job == "record":
        return ["data", "record", "--generator", "basic", "--count", "6", "--workers", "2", "--clock", "real",
                "--out", str(out)]
    if job == "render":
        return ["data", "render", str(os.environ.get("NC_REAL_CASTS", REAL_CASTS)), "--out", str(out),
                "--workers", "2"]
    raise ValueError(f"unknown job {job!r}")


# the moments to strike: a desktop takes ~12 s to start on 2 cores, so both start-up and episodes are hit
DELAYS = {"collect-desktop": (1.0, 30.0), "collect-desktop-1": (1.0, 25.0), "record": (0.3, 10.0),
          "render": (0.5, 6.0)}


@dataclass
class Trial:
    """What one trial did and what it found left."""

    job: str
    signal: str
    delay_s: float
    running: int = 0                     # its processes when the signal came (desktops, shells, workers)
    desktops: int = 0                    # of which desktops (distinct markers)
    exited: bool = False
    exit_s: float | None = None          # signal to the job's exit
    gone_s: float | None = None          # signal to the last of its processes gone
    processes: list[str] = field(default_factory=list)   # left after the limit
    folders: list[str] = field(default_factory=list)     # left in its TMPDIR (after the next run, for KILL)
    displays: list[str] = field(default_factory=list)    # X sockets of its desktops with no server
    restarts: list[str] = field(default_factory=list)    # desktop starts that failed and were retried
    error: str = ""

    @property
    def ok(self) -> bool:
        return not (self.processes or self.folders or self.displays or self.error)


def _ours(mark: str, tag: str, tmp: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["pid"]):
        if proc.pid == os.getpid():
            continue
        try:
            env = proc.environ()
        except (psutil.Error, OSError):
            continue
        if (env.get("NC_STRESS_MARK") == mark or env.get("NC_DESKTOP_SESSION", "").startswith(tag)
                or env.get("HOME", "").startswith(str(tmp))):
            found.append(proc)
    return found


def _displays(procs: list[psutil.Process]) -> set[str]:
    out = set()
    for proc in procs:
        try:
            display = proc.environ().get("DISPLAY", "")
        except (psutil.Error, OSError):
            continue
        if display.startswith(":") and display[1:].isdigit():
            out.add(display[1:])
    return out


def _desktop_tokens(procs: list[psutil.Process], tag: str) -> set[str]:
    out = set()
    for proc in procs:
        with contextlib.suppress(psutil.Error, OSError):
            token = proc.environ().get("NC_DESKTOP_SESSION", "")
            if token.startswith(tag):
                out.add(token)
    return out


def _stale_display(number: str) -> bool:
    """A socket file for display ``number`` with no X server accepting on it."""
    path = f"/tmp/.X11-unix/X{number}"
    if not os.path.exists(path):
        return False
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(2.0)
        try:
            s.connect(path)
        except OSError:
            return True
    return False


def _describe(procs: list[psutil.Process]) -> list[str]:
    out = []
    for p in procs:
        try:
            out.append(f"{p.pid} {' '.join(p.cmdline())[:120]}")
        except psutil.Error:
            continue
    return out


def run_trial(job: str, sig: int, delay: float, workdir: Path, *, after_desktops: int = 0) -> Trial:
    """One trial in ``workdir`` (emptied first); see the module docstring. The signal comes ``delay``
    seconds after the start, or after ``after_desktops`` desktops are up (mid-episode, for tests)."""
    shutil.rmtree(workdir, ignore_errors=True)
    tmp, out = workdir / "tmp", workdir / "out"
    tmp.mkdir(parents=True)
    mark, tag = uuid.uuid4().hex, f"stress{uuid.uuid4().hex[:12]}-"
    env = {**os.environ, "TMPDIR": str(tmp), "NC_STRESS_MARK": mark, "NC_DESKTOP_TAG": tag}
    trial = Trial(job, signal.Signals(sig).name, round(delay, 2))
    cmd = [sys.executable, "-m", "neuralcomputer.cli", *job_command(job, out)]
    # As typed in a terminal: SIGINT at its default even when this runs in a background job.
    log = workdir / "stderr.log"  # a file, not a pipe: an unread pipe would stall a chatty job
    with open(log, "wb") as err:
        proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=err,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    displays: set[str] = set()
    try:
        started = time.monotonic() + 120.0
        while after_desktops and proc.poll() is None and time.monotonic() < started:
            if len(_desktop_tokens(_ours(mark, tag, tmp), tag)) >= after_desktops:
                break
            time.sleep(0.3)
        t_end = time.monotonic() + delay
        while time.monotonic() < t_end and proc.poll() is None:
            displays |= _displays(_ours(mark, tag, tmp))
            time.sleep(0.2)
        if proc.poll() is not None:
            trial.error = f"the job ended before the signal (status {proc.returncode}): " \
                          f"{log.read_text(errors='replace')[-300:]}"
        running = _ours(mark, tag, tmp)
        trial.running, trial.desktops = len(running), len(_desktop_tokens(running, tag))
        t0 = time.monotonic()
        if sig == signal.SIGINT:
            os.killpg(proc.pid, sig)  # Ctrl-C: the whole foreground group
        else:
            proc.send_signal(sig)
        limit = KILL_LIMIT_S if sig == signal.SIGKILL else INTERRUPT_LIMIT_S
        try:
            proc.wait(timeout=limit)
            trial.exited, trial.exit_s = True, round(time.monotonic() - t0, 2)
        except subprocess.TimeoutExpired:
            pass
        while True:
            left = _ours(mark, tag, tmp)
            if not left:
                trial.gone_s = round(time.monotonic() - t0, 2)
                break
            if time.monotonic() - t0 > limit:
                trial.processes = _describe(left)
                break
            time.sleep(0.1)
        if not trial.exited and not trial.error:
            trial.error = f"the job did not exit within {limit:.0f} s"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for p in _ours(mark, tag, tmp):  # only the trial's own processes
            with contextlib.suppress(psutil.Error):
                p.kill()
    if sig == signal.SIGKILL:
        # The next run reclaims what the killed one left: a short recording with workers (it reclaims
        # session, desktop and pool folders alike) in the same TMPDIR.
        subprocess.run([sys.executable, "-m", "neuralcomputer.cli", "data", "record", "--generator", "basic",
                        "--count", "2", "--workers", "2", "--out", str(workdir / "next")],
                       env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    trial.folders = sorted(p.name for p in tmp.iterdir())
    trial.restarts = [line for line in log.read_text(errors="replace").splitlines() if "desktop start" in line]
    trial.displays = sorted(f":{n}" for n in displays if _stale_display(n))
    return trial


def run_trials(trials: int, seed: int, jobs: list[str], workdir: Path) -> Iterator[Trial]:
    """``trials`` trials, one after the other: jobs and signals (SIGINT, SIGTERM, SIGKILL) take turns so
    that every pair comes up, the moment is drawn from ``seed``."""
    rng = random.Random(seed)
    sigs = [signal.SIGINT, signal.SIGTERM, signal.SIGKILL]
    for i in range(trials):
        job = jobs[i % len(jobs)]
        # every (job, signal) pair within the first len(jobs) * 3 trials
        sig = sigs[(i if math.gcd(len(jobs), len(sigs)) == 1 else i + i // len(jobs)) % len(sigs)]
        yield run_trial(job, sig, rng.uniform(*DELAYS[job]), workdir / f"trial-{i}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", default="collect-desktop,record,collect-desktop-1,render")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="stress-interrupts-") as work:
        results = []
        for i, trial in enumerate(run_trials(args.trials, args.seed, args.jobs.split(","), Path(work))):
            print(json.dumps({"trial": i, "ok": trial.ok, **asdict(trial)}), flush=True)
            results.append(trial)
    bad = [r for r in results if not r.ok]
    print(json.dumps({"trials": len(results), "ok": len(results) - len(bad),
                      "max_exit_s": max((r.exit_s or 0.0) for r in results),
                      "max_gone_s": max((r.gone_s or 0.0) for r in results)}))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
