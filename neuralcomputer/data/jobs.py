"""Process hygiene for data jobs: stop on a signal, die with the job, reclaim what killed runs left.

Used by ``ncomp data record``, ``ncomp data render`` and ``ncomp data collect-desktop`` (and the
desktops and shells they start):

* :func:`interruptible`: while a job runs, SIGTERM raises ``KeyboardInterrupt`` in the main thread as
  Ctrl-C does, so one teardown path (``finally`` and ``with`` blocks) serves both signals; Python's
  default SIGTERM would end the process on the spot, leaving workers, desktops and temp folders.
* Worker pools: :func:`worker_init` (a pool initializer) makes a worker leave when the job's main
  process is gone, even after SIGKILL. A parent-death signal alone cannot do it: a forkserver's
  workers are children of the forkserver, which lives as long as any worker does (each worker holds
  its "alive" pipe), so the workers' parent never dies. Instead a watchdog thread waits on a pidfd of
  the job's process, then SIGTERMs its own process (the job's teardown runs in the main thread) and
  exits. :func:`stop_workers` ends a pool's workers within a deadline when the job is interrupted.
* Temp folders: :func:`claim_dir` marks a folder with an ``flock`` held for as long as its owner lives;
  :func:`reclaim_dead` removes folders whose owner is gone. The kernel drops the lock when a process
  dies, however it dies, so a live run's folder is never taken and a reused pid cannot fake an owner.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import select
import shutil
import signal
import stat
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

OWNER_FILE = ".nc-owner"   # in an owned folder: flock-ed by the owner, holds its pid (for people)
WORKER_GRACE_S = 4.0       # a worker whose job is gone gets this long to tear down, then exits anyway
STOP_GRACE_S = 3.5         # an interrupted job gives its workers this long before SIGKILL (target: 5 s)
STOP_WINDOW_S = 10.0       # a job stopping on a signal ignores repeats for this long (see interruptible)
LEGACY_AGE_S = 3600.0      # folders from before owner files: reclaimed when this old (no run lasts so long)

_PR_SET_PDEATHSIG = 1
try:  # loaded once here: dlopen after fork() in a threaded process can deadlock the child
    _LIBC: Any = ctypes.CDLL(None, use_errno=True)
except OSError:
    _LIBC = None


def set_parent_death_signal(sig: int = signal.SIGTERM) -> None:
    """Have the kernel send ``sig`` to this process when the thread that started it exits.

    Safe as a ``preexec_fn`` (one syscall, no allocation of locks). A parent that died before the call
    sends nothing, so callers compare ``os.getppid()`` afterwards when it matters.
    """
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)


# --------------------------------------------------------------------------------------------------
# Signals

_shield_depth = 0
_deferred: BaseException | None = None  # what a signal raised inside a shielded block, raised at its end
_stopping = threading.Event()           # a worker was told to stop: it is unwinding, starts no task
_job_gone = threading.Event()           # a worker's job process has exited: start no task


def _on_signal(make: Callable[[int], BaseException | None]) -> Callable[[int, object], None]:
    """A handler raising ``make(signum)`` (nothing when None), or keeping it for later inside
    :func:`shielded`."""
    def handler(signum: int, frame: object) -> None:
        global _deferred
        exc = make(signum)
        if exc is None:
            return
        if _shield_depth:
            _deferred = _deferred or exc
            return
        raise exc

    return handler


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """Run a teardown to its end: a SIGINT or SIGTERM handled by this module meanwhile (see
    :func:`interruptible`, :func:`worker_init`) raises when the block ends, not inside it.

    A second Ctrl-C, or the SIGTERM a job sends its workers right after their own Ctrl-C, would
    otherwise cut a teardown short and leave a shell, a desktop or a folder behind. (Blocking the
    signals with a mask does not do it: another thread of the process then takes them, and Python
    still runs the handler in the main thread.)
    """
    global _shield_depth, _deferred
    _shield_depth += 1
    try:
        yield
    finally:
        _shield_depth -= 1
    if not _shield_depth and _deferred is not None:
        exc, _deferred = _deferred, None
        raise exc


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """While the block runs in the main thread, SIGTERM raises ``KeyboardInterrupt`` as Ctrl-C does,
    and neither cuts a :func:`shielded` teardown short (a no-op in other threads).

    A repeated signal within ``STOP_WINDOW_S`` of the first is ignored: the job is already stopping,
    and a second exception would land in its teardown. Later ones raise again (a stuck teardown can
    still be interrupted).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    first: list[float] = []

    def interrupt(signum: int) -> BaseException | None:
        if first and time.monotonic() - first[0] < STOP_WINDOW_S:
            return None
        first[:] = [time.monotonic()]
        return KeyboardInterrupt(f"signal {signum}")

    old = {sig: signal.signal(sig, _on_signal(interrupt)) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


# --------------------------------------------------------------------------------------------------
# Workers

_busy = threading.Event()  # set while a worker runs a task: its teardown must run before it exits


def job_identity(pid: int | None = None) -> tuple[int, float]:
    """``(pid, start time)`` of a process (default: this one), for :func:`worker_init`."""
    import psutil

    pid = os.getpid() if pid is None else pid
    return pid, psutil.Process(pid).create_time()


def _stop(signum: int) -> BaseException | None:
    if _stopping.is_set():
        # Already unwinding: Ctrl-C reaches the workers and the job, which then SIGTERMs them too.
        # Raised again, that second signal would land in the first one's teardown (e.g. on the first
        # line of a `finally`, before any shield) and leave the shell or desktop behind.
        return None
    _stopping.set()
    return KeyboardInterrupt(f"signal {signum}") if signum == signal.SIGINT else SystemExit(128 + signum)


def worker_init(job: tuple[int, float], grace: float = WORKER_GRACE_S) -> None:
    """Pool initializer: SIGINT or SIGTERM unwinds the worker's task and ends the worker, and it
    leaves by itself when ``job`` (:func:`job_identity` of the job's main process) is gone."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _on_signal(_stop))
    # A "spawn" worker is the job's own child: the kernel signals it at once. A forkserver's is not,
    # so the watchdog below is what catches a SIGKILLed job there.
    set_parent_death_signal(signal.SIGTERM)
    threading.Thread(target=_watch_job, args=(job, grace), name="nc-job-watchdog", daemon=True).start()


def run_task(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a pool task; a worker told to stop runs no further task (the pool would hand it the next
    queued one) and leaves once this one has cleaned up."""
    _busy.set()
    try:
        if _stopping.is_set() or _job_gone.is_set():
            raise SystemExit(1)
        return fn(*args, **kwargs)
    finally:
        _busy.clear()
        if _stopping.is_set() or _job_gone.is_set():
            os._exit(1)  # the job is stopping or gone: nobody waits for a result


def wait_for_exit(pid: int, start_time: float | None = None) -> None:
    """Block until process ``pid`` (started at ``start_time``, when given) has exited."""
    import psutil

    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    except (OSError, AttributeError):  # no pidfd (old kernel): poll, checking the start time
        while True:
            try:
                if start_time is not None and psutil.Process(pid).create_time() != start_time:
                    return
            except psutil.NoSuchProcess:
                return
            time.sleep(0.5)
    try:
        # the pid may already name another process: then the job is gone
        if start_time is not None and psutil.Process(pid).create_time() != start_time:
            return
    except psutil.NoSuchProcess:
        os.close(fd)
        return
    try:
        select.select([fd], [], [])  # readable once the process has exited
    finally:
        os.close(fd)


def _watch_job(job: tuple[int, float], grace: float) -> None:
    wait_for_exit(*job)
    _job_gone.set()
    if _busy.is_set():
        os.kill(os.getpid(), signal.SIGTERM)  # the main thread unwinds: desktops down, temp folders gone
        deadline = time.monotonic() + grace
        while _busy.is_set() and time.monotonic() < deadline:
            time.sleep(0.05)
    # The pool's task queue never reports EOF (the other workers hold its write end): leave now.
    os._exit(1)


_pool_dir_owner = -1


def own_pool_tempdir() -> None:
    """Claim this process's ``multiprocessing`` temp folder (``pymp-*``, the forkserver's socket) and
    reclaim those of killed jobs: Python removes it at exit, but a SIGKILL leaves it behind."""
    global _pool_dir_owner
    import multiprocessing.util
    import tempfile

    if _pool_dir_owner < 0:
        reclaim_dead(tempfile.gettempdir(), "pymp-")  # only folders with an owner file: ours
        _pool_dir_owner = claim_dir(multiprocessing.util.get_temp_dir())


# Linux's AF_UNIX socket paths hold at most 107 bytes. A forkserver listens on
# TMPDIR/pymp-XXXXXXXX/listener-XXXXXXXX: 32 bytes past the temp folder's own path.
_UNIX_PATH_MAX = 107
_FORKSERVER_SOCKET_TAIL = 32


def pool_context() -> Any:
    """The ``multiprocessing`` context for a job's worker pool: ``forkserver`` (workers start from a
    small clean process, not a copy of this one) where the platform has it and its socket's path fits
    under the temp folder, else ``spawn``. A long TMPDIR (a test runner's per-worker folders, a deep
    home directory) would otherwise fail every pool with ``OSError: AF_UNIX path too long``."""
    import multiprocessing
    import tempfile

    fits = len(os.fsencode(tempfile.gettempdir())) + _FORKSERVER_SOCKET_TAIL <= _UNIX_PATH_MAX
    forkserver = "forkserver" in multiprocessing.get_all_start_methods() and fits
    return multiprocessing.get_context("forkserver" if forkserver else "spawn")


def pool_options() -> dict[str, Any]:
    """Keyword arguments for a worker pool of this job (``ProcessPoolExecutor`` or ``Pool``): workers
    that leave when the job is gone (:func:`worker_init`); also claims the pool's temp folder."""
    own_pool_tempdir()
    return {"initializer": worker_init, "initargs": (job_identity(),)}


def stop_workers(processes: Iterable[Any], grace: float = STOP_GRACE_S) -> None:
    """SIGTERM each live worker (``multiprocessing.Process``), wait ``grace`` seconds in all, SIGKILL the rest."""
    with shielded():  # a second Ctrl-C meanwhile is raised after (the job ends anyway)
        procs = [p for p in processes if p.is_alive()]
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for p in procs:
            p.join(max(0.0, deadline - time.monotonic()))
        for p in procs:
            if p.is_alive():  # its desktop's core processes die with it (their parent-death signal)
                p.kill()
                p.join(2.0)


# --------------------------------------------------------------------------------------------------
# Owned temp folders

def claim_dir(path: str | os.PathLike[str]) -> int:
    """Mark the (new, empty) folder ``path`` as this process's; returns the lock's fd (close it after
    removing the folder, or let the process end). The lock is taken on a temp file that is then
    renamed into place, so :func:`reclaim_dead` never sees an owner file that nobody holds yet."""
    path = Path(path)
    tmp = path / f"{OWNER_FILE}.{uuid.uuid4().hex}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, f"{os.getpid()}\n".encode())
        os.rename(tmp, path / OWNER_FILE)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return fd


def release_dir(fd: int) -> None:
    """Close a :func:`claim_dir` lock (after the folder is gone)."""
    with contextlib.suppress(OSError):
        os.close(fd)


def remove_tree(path: str | os.PathLike[str]) -> None:
    """``rm -rf``, also through read-only files and folders that a session left (git objects, chmod)."""
    def make_writable_and_retry(func: Callable[[str], object], target: str, _: object) -> None:
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(target), stat.S_IRWXU)
            os.chmod(target, stat.S_IRWXU)
            func(target)

    shutil.rmtree(path, onerror=make_writable_and_retry)


def _owner_gone(entry: Path) -> int | None:
    """A lock on ``entry``'s owner file when its owner is gone (the caller closes it), else None."""
    try:
        fd = os.open(entry / OWNER_FILE, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        # Still the same owner file: not one of a new folder made under the same name meanwhile.
        here, held = os.stat(entry / OWNER_FILE), os.fstat(fd)
        if (here.st_dev, here.st_ino) != (held.st_dev, held.st_ino):
            raise BlockingIOError
    except OSError:
        os.close(fd)
        return None
    return fd


def _legacy_orphan(entry: Path, looks_ours: Callable[[Path], bool], now: float) -> bool:
    """A folder made before owner files existed: ours by its layout and untouched for LEGACY_AGE_S."""
    try:
        if (entry / OWNER_FILE).exists() or not looks_ours(entry):
            return False
        newest = max([entry.stat().st_mtime] + [e.stat().st_mtime for e in entry.iterdir()])
    except OSError:
        return False
    return now - newest > LEGACY_AGE_S


def reclaim_dead(parent: str | os.PathLike[str], prefix: str,
                 looks_ours: Callable[[Path], bool] | None = None) -> list[Path]:
    """Remove the folders ``parent/prefix*`` whose owner (:func:`claim_dir`) is gone; returns them.

    ``looks_ours``: also remove folders without an owner file (made by a version before owner files)
    that it recognises and that nobody touched for an hour.
    """
    parent = Path(parent)
    removed: list[Path] = []
    now = time.time()
    try:
        entries = [Path(e.path) for e in os.scandir(parent)
                   if e.name.startswith(prefix) and e.is_dir(follow_symlinks=False)]
    except OSError:
        return removed
    for entry in entries:
        fd = _owner_gone(entry)
        if fd is None and not (looks_ours is not None and _legacy_orphan(entry, looks_ours, now)):
            continue
        try:
            # Renamed first, atomically: the name is free again at once, and a removal cut short
            # by a signal leaves a folder no run will look for under its old name.
            doomed = parent / f".nc-reclaim-{uuid.uuid4().hex}"
            try:
                os.rename(entry, doomed)
            except OSError as exc:
                if exc.errno in (errno.ENOENT, errno.EXDEV):
                    continue
                raise
            remove_tree(doomed)
            removed.append(entry)
        finally:
            if fd is not None:
                os.close(fd)
    # what an earlier reclaim could not finish (nobody else uses these names)
    for leftover in parent.glob(".nc-reclaim-*"):
        with contextlib.suppress(OSError):
            remove_tree(leftover)
    return removed
