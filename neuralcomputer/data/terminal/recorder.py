"""Record authored sessions in a real shell in a pty and write them as asciicast v2.

A :class:`~neuralcomputer.data.terminal.session.SessionScript` is played into ``bash --norc --noprofile``
running in a fresh pseudo-terminal with a fully controlled environment (throwaway ``HOME``, fixed
prompt, UTC, C.UTF-8). Every keystroke becomes an ``i`` event, everything the programs print an
``o`` event and the start of each step an ``m`` marker holding the step's intent.

Two clocks:

* ``"real"``: keys are typed with the human-like delays slept for real; every event carries its
  wall-clock time.
* ``"virtual"`` (default): keys are sent as fast as the programs answer. Typing delays exist only on
  a virtual clock, while program output keeps its *real* latency measured from the key that caused
  it; so typing rhythm is simulated but output timing is genuine, and a 20 s session records in a
  few seconds.

:func:`record_many` records a numbered, shardable, resumable batch of sessions from a generator.
"""

from __future__ import annotations

import codecs
import contextlib
import fcntl
import hashlib
import math
import os
import pwd
import random
import re
import select
import signal
import struct
import subprocess
import tempfile
import termios
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import psutil

from neuralcomputer.data.jobs import (
    claim_dir,
    interruptible,
    pool_context,
    pool_options,
    reclaim_dead,
    release_dir,
    remove_tree,
    run_task,
    shielded,
    stop_workers,
)
from neuralcomputer.data.terminal.asciicast import CastEvent, CastHeader, CastWriter
from neuralcomputer.data.terminal.session import SessionScript, Step
from neuralcomputer.errors import NCError

Clock = Literal["virtual", "real"]

SHELL_COMMAND = ("bash", "--norc", "--noprofile")
# `\u` keeps the prompt truthful (whoami, ls -l owners) while staying fixed on a given machine;
# the constant host name makes the prompt easy to detect and free of container-random host names.
PS1 = r"\u@ncomp:\w\$ "
_PROMPT_RE = re.compile(r"[A-Za-z0-9_.-]+@ncomp:[^\r\n]*[$#] \Z")
HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

STEP_TIMEOUT_S = 10.0  # hard limit for one step to become ready (real seconds)
SESSION_TIMEOUT_S = 120.0  # hard limit for a whole session (real seconds)
QUIET_S = 0.35  # silence that means "a TUI has finished drawing"
ECHO_TIMEOUT_S = 0.15  # virtual clock: how long to wait for a key's echo before typing on
ECHO_SETTLE_S = 0.004  # virtual clock: a gap this long ends a key's echo burst
EXIT_TIMEOUT_S = 3.0  # how long the shell gets to exit by itself after `exit`
_TAIL_CHARS = 4096  # enough of the recent output to recognise a prompt at its end
MAX_OUTPUT_CHARS = 16_000_000  # a session printing more is runaway (e.g. `yes`), not data

# One keystroke: a CSI or SS3 escape sequence (arrows, function keys) travels as one key, as a
# terminal sends it; any other character (including a lone ESC) is a key of its own.
_KEY_RE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1bO.|.", re.DOTALL)


@dataclass
class RecordResult:
    """What one recorded session produced.

    Attributes:
        path: the written ``.cast`` file.
        duration: time of the last event in the cast (seconds, on the chosen clock).
        n_events: number of events written (``o``, ``i`` and ``m``).
        timeouts: steps that did not become ready in time (the session went on regardless),
            plus one if the session hit its global time limit.
        exit_status: the shell's exit status; negative (minus the signal) if it had to be killed.
        wall_time: real seconds the recording took.
    """

    path: Path
    duration: float
    n_events: int
    timeouts: int
    exit_status: int | None
    wall_time: float = 0.0


@dataclass
class RecordSummary:
    """What a :func:`record_many` job did; failed sessions are listed here, never raised.

    Attributes:
        recorded: casts written by this job.
        skipped: casts that already existed (a resumed job).
        failed: ``(file name, one-line reason)`` for each session that could not be recorded.
        wall_time: real seconds of the whole job.
        virtual_duration: summed cast durations of the sessions recorded by this job.
        timeouts: summed step timeouts of the sessions recorded by this job.
    """

    generator: str
    seed: int
    out_dir: Path
    recorded: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    wall_time: float = 0.0
    virtual_duration: float = 0.0
    timeouts: int = 0

    @property
    def ok(self) -> bool:
        """True when no session failed."""
        return not self.failed


# -- human typing ---------------------------------------------------------------------------


def split_keys(keys: str) -> list[str]:
    """Split a step's keystrokes into the units a terminal would send one at a time."""
    return _KEY_RE.findall(keys)


def typing_delay(rng: random.Random, previous: str, key: str) -> float:
    """Seconds a person takes before pressing ``key`` after ``previous`` (human-like, seeded).

    Letters within a word come fast (~45-140 ms), the first letter of a word and symbols slower,
    Enter and control keys slower still, with an occasional hesitation of up to a second.
    """
    if key == "\r":
        delay = rng.uniform(0.12, 0.35)
    elif len(key) > 1 or key < " " or key == "\x7f":
        delay = rng.uniform(0.2, 0.5)  # control keys and escape sequences need a look at the keyboard
    elif previous in ("", " ", "\r") or not previous.isalnum():
        delay = min(max(rng.lognormvariate(math.log(0.12), 0.3), 0.07), 0.25)
    elif key.isalnum():
        delay = min(max(rng.lognormvariate(math.log(0.075), 0.3), 0.045), 0.14)
    else:
        delay = min(max(rng.lognormvariate(math.log(0.13), 0.3), 0.07), 0.25)
    if rng.random() < 0.03:
        delay += rng.uniform(0.3, 0.9)
    return delay


# -- environment ----------------------------------------------------------------------------


def _looks_like_session_dir(path: Path) -> bool:
    """A session folder made before owner files (see :func:`neuralcomputer.data.jobs.reclaim_dead`)."""
    return (path / "etc" / "inputrc").is_file() and (path / "home").is_dir()


def _session_dir(script: SessionScript) -> tuple[Path, int]:
    """A throwaway directory whose name depends only on the session, so that ``pwd`` and
    tracebacks print the same path each time a session is re-recorded (a random suffix would be
    noise a model cannot predict); falls back to a random name if it is in use.

    Returns the folder and its owner lock (:func:`~neuralcomputer.data.jobs.claim_dir`): folders of
    killed runs are removed here first, so a re-recorded session gets its own name back.
    """
    digest = hashlib.sha1(f"{script.generator}:{script.seed}:{script.index}".encode()).hexdigest()[:8]
    reclaim_dead(tempfile.gettempdir(), "nc-", looks_ours=_looks_like_session_dir)
    base = Path(tempfile.gettempdir()) / f"nc-{digest}"
    try:
        base.mkdir(mode=0o755)
    except FileExistsError:
        base = Path(tempfile.mkdtemp(prefix="nc-"))
    try:
        return base, claim_dir(base)
    except BaseException:
        remove_tree(base)
        raise


def _session_env(base: Path, home: Path) -> dict[str, str]:
    """The shell's whole environment: nothing leaks in from the recording process."""
    etc = base / "etc"
    etc.mkdir()
    # Bracketed paste wraps every prompt in \e[?2004h ... \e[?2004l: invisible noise in every cast.
    (etc / "inputrc").write_text("set enable-bracketed-paste off\nset bell-style none\n")
    # Git reads its config from here, not HOME, so `ls -a` in HOME shows only the session's files.
    (etc / "gitconfig").write_text(
        "[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n[core]\n\tpager = less\n"
    )
    user = _user_name()
    return {
        "PATH": HOST_PATH,
        "HOME": str(home),
        "USER": user,
        "LOGNAME": user,
        "SHELL": "/bin/bash",
        "TERM": "xterm-256color",
        "LANG": "C.UTF-8",
        "TZ": "UTC",
        "PS1": PS1,
        "PS2": "> ",
        "HISTFILE": "/dev/null",
        "INPUTRC": str(etc / "inputrc"),
        "PAGER": "less",
        "EDITOR": "vim",
        "VISUAL": "vim",
        "LESSHISTFILE": "-",
        "GIT_CONFIG_GLOBAL": str(etc / "gitconfig"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "NC User",
        "GIT_AUTHOR_EMAIL": "user@ncomp.local",
        "GIT_COMMITTER_NAME": "NC User",
        "GIT_COMMITTER_EMAIL": "user@ncomp.local",
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def shell_prompt(cwd: str = "~") -> str:
    """The prompt our recorded shells show on this machine (``PS1`` expanded for this user)."""
    return f"{_user_name()}@ncomp:{cwd}{'#' if os.getuid() == 0 else '$'} "


def _user_name() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:  # a uid without a passwd entry (some containers)
        return "user"


def _write_files(workdir: Path, files: dict[str, str]) -> None:
    for rel, content in files.items():
        target = (workdir / rel).resolve()
        if workdir.resolve() not in target.parents:
            raise NCError(f"session file {rel!r} lies outside the working directory")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)


def _take_controlling_tty() -> None:
    """Runs in the child between fork and exec (after setsid): make the pty slave, already on
    fd 0, the controlling terminal, which job control, vim and less (/dev/tty) need.

    Kept to one ioctl because code run between fork and exec must not take locks that another
    thread of the parent might have held at fork time.
    """
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _kill_session(proc: subprocess.Popen[bytes]) -> None:
    """Kill the shell and every process of its session, including jobs that bash moved into
    process groups of their own and orphans re-parented to init."""
    sid = proc.pid
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(sid, signal.SIGKILL)
    for p in psutil.process_iter():
        if p.pid == os.getpid():
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if os.getsid(p.pid) == sid:
                os.kill(p.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


# -- the session player ---------------------------------------------------------------------


class _Player:
    """Plays keys into a pty, reads its output and stamps events on the chosen clock.

    Time model: ``now()`` is ``anchor_v + (monotonic() - anchor_r)``. On the real clock the anchor
    is the start and never moves. On the virtual clock :meth:`idle` jumps the anchor forward by the
    human delay instead of sleeping, so output read afterwards is stamped at (key time + its real
    latency).
    """

    def __init__(self, fd: int, clock: Clock, deadline: float) -> None:
        self.fd = fd
        self.virtual = clock == "virtual"
        self.deadline = deadline
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.events: list[CastEvent] = []
        self.anchor_v = 0.0
        self.anchor_r = time.monotonic()
        self.last_time = 0.0
        self.last_activity = self.anchor_r  # real time of the last key sent or output read
        self.tail = ""  # output since the current step started (its end only)
        self.eof = False
        self.output_chars = 0
        self.poller = select.poll()
        self.poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)

    # clock and events

    def restart_clock(self) -> None:
        """Make "now" time zero, and everything printed so far part of the first frame.

        Called once the shell's first prompt is up: the shell's start-up latency is not part of the
        session, and a clip's first frame (the model's conditioning frame) should show the prompt.
        """
        self.events = [CastEvent(time=0.0, code=e.code, data=e.data) for e in self.events]
        self.anchor_v, self.anchor_r, self.last_time = 0.0, time.monotonic(), 0.0

    def now(self) -> float:
        return self.anchor_v + (time.monotonic() - self.anchor_r)

    def add(self, code: str, data: str) -> float:
        t = max(self.now(), self.last_time)  # events must never go back in time
        self.events.append(CastEvent(time=t, code=code, data=data))
        self.last_time = t
        return t

    def timed_out(self) -> bool:
        return time.monotonic() >= self.deadline

    # reading

    def read_once(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for output; record it. True if something was read."""
        if self.eof:
            return False
        if not self.poller.poll(max(0, int(timeout * 1000))):
            return False
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return False
        except OSError:  # EIO: every slave fd is closed, the session is over
            data = b""
        if not data:
            self.eof = True
            return False
        text = self.decoder.decode(data)
        self.last_activity = time.monotonic()
        self.output_chars += len(text)
        if self.output_chars > MAX_OUTPUT_CHARS:
            raise NCError(f"the session printed more than {MAX_OUTPUT_CHARS} characters (runaway output)")
        if text:
            self.add("o", text)
            self.tail = (self.tail + text)[-_TAIL_CHARS:]
        return True

    def pump(self, seconds: float) -> None:
        """Read output for ``seconds`` of real time (or until the session deadline)."""
        end = min(time.monotonic() + seconds, self.deadline)
        while not self.eof and (left := end - time.monotonic()) > 0:
            self.read_once(min(left, 0.05))

    def wait(self, ready: Callable[[], bool], timeout: float) -> bool:
        """Read output until ``ready()`` or ``timeout`` real seconds; True if it became ready."""
        end = min(time.monotonic() + timeout, self.deadline)
        while not ready():
            left = end - time.monotonic()
            if left <= 0 or self.eof:
                return ready()
            self.read_once(min(left, 0.05))
        return True

    def wait_quiet(self, timeout: float) -> bool:
        return self.wait(lambda: time.monotonic() - self.last_activity >= QUIET_S, timeout)

    def wait_prompt(self, expect: str, timeout: float) -> bool:
        if expect:
            return self.wait(lambda: self.tail.endswith(expect), timeout)
        return self.wait(lambda: _PROMPT_RE.search(self.tail) is not None, timeout)

    # writing

    def idle(self, seconds: float) -> None:
        """A person thinking or moving a finger for ``seconds``."""
        if self.virtual:
            while self.read_once(0):  # output that is already there belongs before the gap
                pass
            self.anchor_v = self.now() + seconds
            self.anchor_r = time.monotonic()
        else:
            self.pump(seconds)

    def press(self, key: str, *, settle: bool) -> float:
        """Send one key and return its time. On the virtual clock with ``settle``, wait for its
        echo so that the echo is stamped against this key and not the next one."""
        stamp = self.add("i", key)
        try:
            os.write(self.fd, key.encode())
        except OSError:
            self.eof = True
            return stamp
        self.last_activity = time.monotonic()
        if self.virtual and settle and self.read_once(ECHO_TIMEOUT_S):
            end = time.monotonic() + ECHO_TIMEOUT_S
            while time.monotonic() < end and self.read_once(ECHO_SETTLE_S):
                pass
        return stamp

    def type_keys(self, keys: str, rng: random.Random) -> tuple[float, float]:
        """Type ``keys`` with human delays; returns the times of the first and the last key."""
        units = split_keys(keys)
        previous = ""
        first = last = self.now()
        for n, key in enumerate(units):
            if self.eof or self.timed_out():
                break
            self.idle(typing_delay(rng, previous, key))
            # the last key's output is the step's own output: the readiness wait reads it
            last = self.press(key, settle=n < len(units) - 1)
            first = last if n == 0 else first
            previous = key
        return first, last


def _play_step(player: _Player, step: Step, rng: random.Random, index: int, timeout: float) -> dict[str, object]:
    player.idle(0)
    start = player.add("m", step.intent)
    player.idle(max(step.pause, 0.0))
    player.tail = ""
    keys_start, keys_end = player.type_keys(step.keys, rng)
    budget = min(timeout, max(player.deadline - time.monotonic(), 0.0))
    quiet = step.wait_for == "quiet"
    ready = player.wait_quiet(budget) if quiet else player.wait_prompt(step.expect, budget)
    # ready = the prompt's output event, or the moment the screen was found quiet
    end = max(player.now() if quiet else player.last_time, keys_end)
    if step.hold > 0 and not player.eof:
        player.pump(step.hold)  # real time on both clocks: the program redraws by itself meanwhile
        end = max(player.now(), end)
    return {
        "index": index,
        "start": round(start, 6),
        "keys_start": round(keys_start, 6),
        "keys_end": round(keys_end, 6),
        "end": round(end, 6),
        "timed_out": not ready,
    }


def record_session(
    script: SessionScript,
    out_path: str | os.PathLike[str],
    *,
    cols: int = 80,
    rows: int = 24,
    clock: Clock = "virtual",
    rng: random.Random | None = None,
    step_timeout: float = STEP_TIMEOUT_S,
    session_timeout: float = SESSION_TIMEOUT_S,
) -> RecordResult:
    """Run ``script`` in a real ``bash`` in a pty and write the session to ``out_path``.

    Args:
        script: the authored session (files to create, steps to type).
        out_path: the ``.cast`` file to write (atomically: it appears complete or not at all).
        cols, rows: terminal size set on the pty.
        clock: ``"virtual"`` types at program speed on a simulated human clock, ``"real"`` sleeps
            the typing delays (see the module docstring).
        rng: source of the typing delays; by default seeded from the script's identity, so a
            script is always typed with the same rhythm.
        step_timeout: real seconds a step may take to become ready before the session moves on.
        session_timeout: real seconds after which the session is ended whatever it is doing.

    Returns:
        A :class:`RecordResult`. Steps that time out are counted, not raised; the shell and all
        its descendants are killed and the temporary directories removed in every case.
    """
    if clock not in ("virtual", "real"):
        raise NCError(f"clock must be 'virtual' or 'real', got {clock!r}")
    if cols < 2 or rows < 2:
        raise NCError(f"terminal size {cols}x{rows} is too small")
    out_path = Path(out_path)
    rng = rng or random.Random(f"typing:{script.generator}:{script.seed}:{script.index}")
    wall_start = time.monotonic()
    timestamp = int(time.time())

    base, owner = _session_dir(script)
    master = -1
    proc: subprocess.Popen[bytes] | None = None
    try:
        home = base / "home"
        home.mkdir()
        env = _session_env(base, home)
        _write_files(home, script.files)

        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        try:
            proc = subprocess.Popen(
                list(SHELL_COMMAND),
                stdin=slave,
                stdout=slave,
                stderr=slave,
                cwd=home,
                env=env,
                start_new_session=True,
                preexec_fn=_take_controlling_tty,
                close_fds=True,
            )
        finally:
            os.close(slave)  # only the child holds the slave now: EOF arrives when it is gone
        os.set_blocking(master, False)

        player = _Player(master, clock, wall_start + session_timeout)
        timeouts = 0
        if not player.wait_prompt("", step_timeout):
            timeouts += 1
        player.restart_clock()
        timing = []
        for n, step in enumerate(script.steps):
            if player.eof or player.timed_out():
                break
            record = _play_step(player, step, rng, n, step_timeout)
            timeouts += bool(record["timed_out"])
            timing.append(record)
        if player.timed_out():
            timeouts += 1

        # leave like a person would; if the shell is stuck in a program, it is killed below
        if not player.eof and not player.timed_out():
            player.idle(rng.uniform(0.5, 1.2))
            player.type_keys("exit\r", rng)
            player.wait(lambda: player.eof, EXIT_TIMEOUT_S)
        _kill_session(proc)
        while player.read_once(0):  # whatever the dying session still printed
            pass
        exit_status = proc.returncode

        duration = player.last_time
        meta = dict(script.to_json())
        meta["timing"] = timing
        meta["recorder"] = {
            "clock": clock,
            "timeouts": timeouts,
            "exit_status": exit_status,
            "prompt": PS1,
        }
        header = CastHeader(
            version=2,
            width=cols,
            height=rows,
            timestamp=timestamp,
            duration=round(duration, 6),
            command=" ".join(SHELL_COMMAND),
            title=script.task,
            env={"SHELL": "/bin/bash", "TERM": "xterm-256color"},
            extra={"x_neuralcomputer": meta},
        )
        # events are buffered and written in one go: the header needs the duration and timing
        # known only at the end, and a failed session then leaves no file at all
        out_path.parent.mkdir(parents=True, exist_ok=True)
        with CastWriter(out_path, header) as writer:
            for event in player.events:
                writer.write(event)
        return RecordResult(
            path=out_path,
            duration=duration,
            n_events=len(player.events),
            timeouts=timeouts,
            exit_status=exit_status,
            wall_time=time.monotonic() - wall_start,
        )
    finally:
        with shielded():  # a second signal (Ctrl-C, then the job's SIGTERM) must not leave the shell
            if proc is not None and proc.returncode is None:
                _kill_session(proc)
            if master >= 0:
                os.close(master)
            remove_tree(base)
            release_dir(owner)


# -- batches --------------------------------------------------------------------------------


def cast_name(generator: str, seed: int, index: int) -> str:
    """File name of session ``index`` of a ``record_many`` job (the same in every shard)."""
    return f"{generator}-s{seed}-{index:06d}.cast"


def _record_indexed(job: tuple[str, int, int, str, Clock, int, int]) -> tuple[str, str, float, int]:
    """Pool worker: record one numbered session. Returns (name, error or "", duration, timeouts);
    errors are returned, not raised, so one bad session never stops a batch."""
    from neuralcomputer.data.terminal.generators import GENERATORS

    generator, seed, index, out_dir, clock, cols, rows = job
    name = cast_name(generator, seed, index)
    try:
        script = GENERATORS[generator](seed, index)
        # run_task: a worker whose job was killed removes its shell and folder before it leaves
        result = run_task(record_session, script, Path(out_dir) / name, cols=cols, rows=rows, clock=clock)
    except Exception as exc:  # one line per failed session in the summary
        return name, f"{type(exc).__name__}: {exc}", 0.0, 0
    return name, "", result.duration, result.timeouts


def _remove_stale_temps(out: Path, names: set[str]) -> None:
    """Delete temp files that an earlier, killed job left for sessions this job will record.

    CastWriter names its temp file ``.<name>.<random>.tmp``; only this job's own session names are
    touched, so shards writing into the same folder at the same time never disturb each other.
    """
    for entry in os.scandir(out):
        if entry.name.startswith(".") and entry.name.endswith(".tmp"):
            name = entry.name[1:].rsplit(".", 2)[0]
            if name in names:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)


def _record_in_pool(jobs: list[tuple], workers: int, collect: Callable[[tuple[str, str, float, int]], None]) -> None:
    context = pool_context()
    # an executor, not multiprocessing.Pool: if a worker dies (OOM killer), Pool waits forever for
    # its task, while the executor fails the pending futures. Each worker leaves (shell killed, folder
    # removed) when this process is gone, even after SIGKILL.
    pool = ProcessPoolExecutor(min(workers, len(jobs)), mp_context=context, **pool_options())
    try:
        futures = {pool.submit(_record_indexed, job): job for job in jobs}
        for future in as_completed(futures):
            try:
                collect(future.result())
            except BrokenProcessPool as exc:
                generator, seed, index = futures[future][:3]
                collect((cast_name(generator, seed, index), f"worker died: {exc}", 0.0, 0))
    except BaseException:
        # Interrupted: stop the workers within a deadline (the executor's shutdown would wait for
        # every running session to finish), each one cleaning up after its session.
        stop_workers(list(getattr(pool, "_processes", {}).values()))
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def record_many(
    generator: str,
    count: int,
    seed: int,
    out_dir: str | os.PathLike[str],
    *,
    shard: tuple[int, int] = (0, 1),
    workers: int = 1,
    clock: Clock = "virtual",
    cols: int = 80,
    rows: int = 24,
    progress: bool = True,
) -> RecordSummary:
    """Record sessions ``0 .. count-1`` of ``generator`` (those of shard ``K`` of ``N``).

    Session ``i`` belongs to shard ``(K, N)`` when ``i % N == K`` and is always the script
    ``GENERATORS[generator](seed, i)`` written to ``cast_name(generator, seed, i)``, so the union of
    the shards is exactly the unsharded job. Files that already exist are skipped (writes are
    atomic, so an existing file is complete), which makes a job resumable; temp files left by a
    killed earlier run are removed. Failed sessions are listed in the summary, not raised.

    Args:
        generator: a name from :func:`neuralcomputer.data.terminal.generators.list_generators`.
        count: number of sessions in the whole (unsharded) job.
        seed: job seed; with the index it determines every script.
        out_dir: directory for the ``.cast`` files (created if missing).
        shard: ``(K, N)``: record only this job's K-th of N shards.
        workers: parallel recording processes (a forkserver/spawn process pool: forking a process
            that runs threads, such as tqdm's monitor, is unsafe, and ptys are per process anyway).
        clock, cols, rows: as in :func:`record_session`.
        progress: show a tqdm progress bar.
    """
    from tqdm import tqdm

    from neuralcomputer.data.terminal.generators import GENERATORS, list_generators

    if generator not in GENERATORS:
        raise NCError(f"unknown generator {generator!r}; known: {', '.join(list_generators())}")
    k, n = shard
    if n < 1 or not 0 <= k < n:
        raise NCError(f"shard must be (K, N) with 0 <= K < N, got {shard}")
    if count < 0 or workers < 1:
        raise NCError(f"count must be >= 0 and workers >= 1, got count={count} workers={workers}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = RecordSummary(generator=generator, seed=seed, out_dir=out)
    start = time.monotonic()

    jobs = []
    for i in range(k, count, n):
        path = out / cast_name(generator, seed, i)
        if path.exists():
            summary.skipped.append(path)
        else:
            jobs.append((generator, seed, i, str(out), clock, cols, rows))
    _remove_stale_temps(out, {cast_name(generator, seed, job[2]) for job in jobs})

    bar = tqdm(total=len(jobs), desc=f"record {generator}", unit="session", disable=not progress)

    def collect(outcome: tuple[str, str, float, int]) -> None:
        name, error, duration, timeouts = outcome
        if error:
            summary.failed.append((name, error))
        else:
            summary.recorded.append(out / name)
            summary.virtual_duration += duration
            summary.timeouts += timeouts
        bar.update(1)

    # SIGTERM unwinds like Ctrl-C: shells killed, temp folders and partial files removed
    with interruptible():
        try:
            if workers == 1 or len(jobs) <= 1:
                for job in jobs:
                    collect(_record_indexed(job))
            else:
                _record_in_pool(jobs, workers, collect)
        finally:
            bar.close()
    summary.recorded.sort()
    summary.failed.sort()
    summary.wall_time = time.monotonic() - start
    return summary
