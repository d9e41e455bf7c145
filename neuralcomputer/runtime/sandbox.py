"""A sandbox for running untrusted commands: bubblewrap namespaces plus hard resource limits.

Hybrid mode runs whatever the user types in a real shell. Everything here keeps that shell from
reaching anything but itself:

* **namespaces** (bubblewrap ``--unshare-all``): its own network namespace with only a loopback
  interface (no network, no DNS), its own PID namespace (it sees and can signal only its own
  processes), IPC, UTS (hostname ``ncomp``) and user namespace (``--disable-userns``: no nested one);
* **filesystem**: ``/usr`` and a handful of ``/etc`` files read-only, a fresh ``/proc`` and ``/dev``
  (read-only, except a small ``/dev/shm``), and size-capped tmpfs mounts for ``/tmp`` and the home
  ``/home/user``: the kernel enforces the disk quota, nothing is written to the host's disk, and the
  files vanish with the namespace when the sandbox closes;
* **identity**: started as host uid/gid 65534 (``nobody``) when we are root, so the per-user process
  limit really binds (root is exempt from ``RLIMIT_NPROC``) and a kernel escape lands unprivileged;
* **limits** per command (``setrlimit`` in the child): CPU seconds, address space, file size,
  process count, no core files, nice 10; a wall-clock timeout, an output cap and a total-memory
  watchdog, after which every process of the command is killed.

One sandbox lives as long as its owner (a shell engine keeps its files and working directory across
commands): a small supervisor (:func:`_supervise`, run by the sandbox's own ``/usr/bin/python3``)
reads one JSON request per line, runs the command and answers one JSON line. Processes a command
leaves behind are killed when it ends, so every command starts from a quiet sandbox.

What a command did reaches the host only as the supervisor saw it, never as text the command
printed (which it could forge): its exit status, and the working directory it was in when it last
stopped itself (``SIGSTOP``; the supervisor reads ``/proc/PID/cwd`` and lets it go on). The engines'
wrappers stop themselves after the user's command, so their last stop reports where the command left
the shell; a command can only make that report a directory its own process really was in.

Why not a container runtime or cgroups: bubblewrap is one small binary that works unprivileged, and
cgroup delegation differs from machine to machine; rlimits plus the watchdog need neither.
"""

from __future__ import annotations

import base64
import contextlib
import inspect
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from neuralcomputer.errors import NCError

MiB = 1 << 20
HOME = "/home/user"
SANDBOX_USER = 65534  # nobody/nogroup: a host identity that owns nothing
# Host /etc files the tools inside need (user names, the dynamic loader, alternatives symlinks);
# the rest of /etc (host names, credentials, service configs) stays out.
_ETC_FILES = ("passwd", "group", "nsswitch.conf", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives",
              "localtime", "hosts", "inputrc", "bash.bashrc", "terminfo", "mime.types", "protocols", "services")
_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": HOME,
    "USER": "user",
    "LOGNAME": "user",
    "SHELL": "/bin/bash",
    "TERM": "xterm-256color",
    "LANG": "C.UTF-8",
    "TZ": "UTC",
}
# How long the host waits beyond a command's own timeout before it declares the supervisor stuck.
_REPLY_GRACE_S = 5.0


@dataclass(frozen=True)
class SandboxLimits:
    """Hard limits for every command run in a :class:`Sandbox`.

    Attributes:
        wall_timeout_s: wall-clock seconds before the command and all it started are killed.
        cpu_seconds: CPU seconds per process (``RLIMIT_CPU``; SIGXCPU, then SIGKILL a second later).
        memory_bytes: address space per process (``RLIMIT_AS``): a large allocation fails cleanly.
        max_processes: processes (and threads) the sandbox user may own at once inside the sandbox
            (``RLIMIT_NPROC``), counting the supervisor (the namespace's PID 1: with ``--as-pid-1``
            bubblewrap adds no init of its own) and the command itself: a fork bomb stops here. At
            least 4, so that a shell command has room for a pipeline or a subshell.
        max_file_bytes: largest file a command may write (``RLIMIT_FSIZE``).
        max_disk_bytes: size of the home tmpfs; ``/tmp`` gets half of it, ``/dev/shm`` 1 MiB.
        max_output_bytes: output kept per command; past it the command is killed, the output
            truncated.
        max_total_memory_bytes: anonymous resident memory of all the command's processes together,
            polled every 50 ms; ``RLIMIT_AS`` bounds one process, this bounds many.
    """

    wall_timeout_s: float = 10.0
    cpu_seconds: int = 5
    memory_bytes: int = 256 * MiB
    max_processes: int = 64
    max_file_bytes: int = 16 * MiB
    max_disk_bytes: int = 32 * MiB
    max_output_bytes: int = 64 * 1024
    max_total_memory_bytes: int = 512 * MiB

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not value > 0:
                raise NCError(f"SandboxLimits.{name}={value}: expected a positive number")
        if self.max_processes < 4:
            raise NCError(f"SandboxLimits.max_processes={self.max_processes}: expected at least 4 (the supervisor "
                          "and the command take 2, and a shell needs room for a pipeline or a subshell)")


@dataclass
class SandboxResult:
    """What one command did.

    Attributes:
        stdout: its output (stdout and stderr interleaved, as a terminal shows them), decoded as
            UTF-8 with replacement characters, at most ``max_output_bytes`` of it.
        exit_code: the exit status; killed by a signal it is ``128 + signal``, as a shell reports it.
        timed_out: it ran past ``wall_timeout_s`` and was killed.
        truncated: the output was cut at ``max_output_bytes``.
        killed_reason: why it was stopped early (``timeout``, ``output limit``, ``memory limit``,
            ``cpu limit``, ``file size limit``, ``sandbox died``, ``sandbox unresponsive``), or None.
        elapsed_s: wall-clock seconds it ran.
        stop_cwd: the command process's working directory when it last stopped itself (``kill -STOP
            $$``), read by the supervisor; None if it never stopped. A stopped command is let go on.
    """

    stdout: str
    exit_code: int
    timed_out: bool = False
    truncated: bool = False
    killed_reason: str | None = None
    elapsed_s: float = 0.0
    stop_cwd: str | None = None


def find_bwrap() -> str:
    """The bubblewrap binary, or :class:`NCError` saying how to install it."""
    path = shutil.which("bwrap") or ("/usr/bin/bwrap" if os.access("/usr/bin/bwrap", os.X_OK) else None)
    if path is None:
        raise NCError("bubblewrap (bwrap) is not installed: hybrid mode's sandbox needs it (apt-get install bubblewrap)")
    return path


def _bwrap_argv(bwrap: str, limits: SandboxLimits, info_fd: int) -> list[str]:
    """The bubblewrap command line for one sandbox (see the module docstring for what each part stops)."""
    argv = [bwrap, "--unshare-all", "--unshare-user", "--uid", str(SANDBOX_USER), "--gid", str(SANDBOX_USER),
            "--disable-userns", "--die-with-parent", "--new-session", "--as-pid-1", "--hostname", "ncomp",
            "--info-fd", str(info_fd), "--ro-bind", "/usr", "/usr"]
    # Merged-/usr systems have /bin, /lib... as symlinks into /usr; older ones have real directories.
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        host = Path("/") / name
        if host.is_symlink():
            argv += ["--symlink", os.readlink(host), f"/{name}"]
        elif host.is_dir():
            argv += ["--ro-bind", str(host), f"/{name}"]
    for name in _ETC_FILES:
        argv += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    argv += ["--proc", "/proc", "--dev", "/dev",
             # --dev's tmpfs is writable and unbounded: cap /dev/shm, make the rest read-only.
             "--size", str(1 * MiB), "--tmpfs", "/dev/shm", "--remount-ro", "/dev",
             "--size", str(max(limits.max_disk_bytes // 2, MiB)), "--tmpfs", "/tmp",
             "--size", str(limits.max_disk_bytes), "--tmpfs", HOME,
             "--remount-ro", "/",  # bwrap's own root tmpfs is unbounded: no files there
             "--chdir", HOME, "--clearenv"]
    for key, value in _ENV.items():
        argv += ["--setenv", key, value]
    # The supervisor's source comes as the first line on stdin, keeping ``ps`` inside readable.
    return [*argv, "/usr/bin/python3", "-I", "-S", "-c", "import json, sys; exec(json.loads(sys.stdin.buffer.readline()))"]


class Sandbox:
    """One long-lived sandbox: run commands in it, one at a time; its files persist until :meth:`close`.

    Args:
        limits: the limits every command runs under.
        workdir: a host directory whose files are copied into the home when the sandbox starts
            (the host copy is never written; bounded by the home's size).

    Raises:
        NCError: bubblewrap is missing or the sandbox cannot start on this machine.

    Example::

        with Sandbox() as box:
            box.run("echo hi > f; cat f").stdout   # 'hi\\n'
    """

    def __init__(self, limits: SandboxLimits | None = None, *, workdir: str | os.PathLike[str] | None = None) -> None:
        self.limits = limits or SandboxLimits()
        self.workdir = Path(workdir) if workdir is not None else None
        self._bwrap = find_bwrap()
        self._proc: subprocess.Popen[bytes] | None = None
        self._pending = b""
        self._lock = threading.RLock()  # one request at a time on the supervisor's pipe
        self.restarts = 0  # times the sandbox was replaced (its files lost) after it died
        self._start()

    # -- lifecycle --------------------------------------------------------------------------------

    def _start(self) -> None:
        kwargs: dict[str, Any] = {}
        if os.geteuid() == 0:  # never run the sandbox as host root (see the module docstring)
            kwargs = {"user": SANDBOX_USER, "group": SANDBOX_USER, "extra_groups": []}
        info_r, info_w = os.pipe()
        with tempfile.TemporaryFile() as stderr:
            try:
                self._proc = subprocess.Popen(
                    _bwrap_argv(self._bwrap, self.limits, info_w), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                    stderr=stderr, pass_fds=(info_w,), cwd="/", env={}, start_new_session=True, **kwargs)
            finally:
                os.close(info_w)
            self._pending = b""
            try:
                info = _read_all(info_r, deadline=time.monotonic() + 10.0)
            finally:
                os.close(info_r)
            try:
                self._init_pid: int | None = int(json.loads(info)["child-pid"])  # host pid of the supervisor
            except (ValueError, KeyError):
                self._init_pid = None
            self._finalizer = weakref.finalize(self, _terminate, self._proc, self._init_pid)
            assert self._proc.stdin is not None
            with contextlib.suppress(OSError):  # if bubblewrap failed already, the ping reports why
                self._proc.stdin.write(json.dumps(_SUPERVISOR_SOURCE).encode() + b"\n")
            reply = self._request({"op": "ping"}, timeout_s=10.0)
            if reply is None or not reply.get("ok"):
                self._kill()
                stderr.seek(0)
                lines = stderr.read().decode(errors="replace").strip().splitlines()
                raise NCError("the sandbox did not start: " + (lines[-1] if lines else "no reply from its supervisor"))
        if self.workdir is not None:
            try:
                self._seed(self.workdir)
            except BaseException:
                self._kill()
                raise

    def _seed(self, workdir: Path) -> None:
        if not workdir.is_dir():
            raise NCError(f"sandbox workdir {workdir}: not a directory")
        for path in sorted(workdir.rglob("*")):
            if path.is_file() and not path.is_symlink():
                self.put_file(path.relative_to(workdir).as_posix(), path.read_bytes())

    @property
    def alive(self) -> bool:
        """Whether the sandbox's processes are running."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pids(self) -> tuple[int, int | None]:
        """Host pids of bubblewrap and of the namespace's init (every sandbox process descends from them)."""
        if self._proc is None:
            raise NCError("the sandbox is closed")
        return self._proc.pid, self._init_pid

    def reset(self) -> None:
        """Throw the sandbox away and start a fresh one (empty home, no processes)."""
        with self._lock:
            self.close()
            self._start()

    def close(self) -> None:
        """Stop every process of the sandbox; its home and /tmp vanish with it. Safe to call twice."""
        with self._lock:
            if self._proc is None:
                return
            proc, self._proc = self._proc, None
            self._finalizer.detach()
            _terminate(proc, self._init_pid, graceful=True)

    def _kill(self) -> None:
        if self._proc is not None:
            proc, self._proc = self._proc, None
            self._finalizer.detach()
            _terminate(proc, self._init_pid)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- requests ---------------------------------------------------------------------------------

    def _request(self, request: dict[str, Any], timeout_s: float) -> dict[str, Any] | None:
        """Send one request line and wait for the reply line; None if the supervisor died or hung."""
        proc = self._proc
        if proc is None or proc.stdin is None or proc.stdout is None:
            return None
        try:
            proc.stdin.write(json.dumps(request).encode() + b"\n")
            proc.stdin.flush()
        except (BrokenPipeError, OSError):
            return None
        deadline = time.monotonic() + timeout_s
        fd = proc.stdout.fileno()
        while b"\n" not in self._pending:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return None
            self._pending += chunk
        line, self._pending = self._pending.split(b"\n", 1)
        return json.loads(line)

    def put_file(self, path: str, data: bytes | str) -> None:
        """Write a file into the home (``path`` relative to it); :class:`NCError` if it does not fit."""
        if self._proc is None:
            raise NCError("the sandbox is closed")
        raw = data.encode() if isinstance(data, str) else data
        with self._lock:
            reply = self._request({"op": "put", "path": path, "data": base64.b64encode(raw).decode()}, timeout_s=30.0)
            if reply is None:  # a late reply would pair with the next request: replace the sandbox
                self._kill()
                self._start()
                self.restarts += 1
        if reply is None or "error" in reply:
            raise NCError(f"sandbox file {path!r}: " + (reply["error"] if reply else "the sandbox died"))

    def run(self, command: str | Sequence[str], *, tty: tuple[int, int] | None = None) -> SandboxResult:
        """Run a command and wait for it (at most ``limits.wall_timeout_s``).

        Args:
            command: a shell command line (run by ``/bin/bash -c``) or an argv list.
            tty: ``(cols, rows)`` to run it on a pseudo-terminal of that size, so programs format
                for a screen (``ls`` in columns, line-buffered output, ``\\r\\n`` line ends); None
                for a plain pipe.

        Returns:
            a :class:`SandboxResult`. Should the supervisor itself die or hang (it is the
            namespace's init, which commands cannot signal), the result says ``sandbox died`` or
            ``sandbox unresponsive`` and the sandbox is replaced by a fresh one (``restarts``).
        """
        argv = ["/bin/bash", "-c", command] if isinstance(command, str) else [str(a) for a in command]
        if not argv:
            raise NCError("sandbox command: empty argv")
        with self._lock:
            return self._run(argv, tty)

    def _run(self, argv: list[str], tty: tuple[int, int] | None) -> SandboxResult:
        if self._proc is None:
            raise NCError("the sandbox is closed")
        if not self.alive:
            self._kill()
            self._start()
            self.restarts += 1
        start = time.monotonic()
        reply = self._request({"op": "run", "argv": argv, "tty": list(tty) if tty else None,
                               "limits": asdict(self.limits)}, timeout_s=self.limits.wall_timeout_s + _REPLY_GRACE_S)
        if reply is None:  # the command took the supervisor down, or it hung: replace the sandbox
            reason = "sandbox died" if self._proc is not None and self._proc.poll() is not None else "sandbox unresponsive"
            self._kill()
            self._start()
            self.restarts += 1
            return SandboxResult("", 128 + signal.SIGKILL, timed_out=reason == "sandbox unresponsive",
                                 killed_reason=reason, elapsed_s=time.monotonic() - start)
        if "error" in reply:
            return SandboxResult(reply["error"] + "\n", 127, elapsed_s=time.monotonic() - start)
        return SandboxResult(reply["output"], reply["exit_code"], timed_out=reply["killed_reason"] == "timeout",
                             truncated=reply["truncated"], killed_reason=reply["killed_reason"],
                             elapsed_s=reply["elapsed_s"], stop_cwd=reply.get("stop_cwd"))


def run_sandboxed(command: str | Sequence[str], *, limits: SandboxLimits | None = None,
                  workdir: str | os.PathLike[str] | None = None,
                  tty: tuple[int, int] | None = None) -> SandboxResult:
    """Run one command in a fresh :class:`Sandbox` and throw the sandbox away.

    Args:
        command: a shell command line (``bash -c``) or an argv list.
        limits: the limits (defaults: :class:`SandboxLimits`).
        workdir: a host directory copied into the home first (never written).
        tty: ``(cols, rows)`` to run on a pseudo-terminal, None for a pipe.
    """
    with Sandbox(limits, workdir=workdir) as box:
        return box.run(command, tty=tty)


def _read_all(fd: int, deadline: float) -> bytes:
    """Everything from ``fd`` until EOF or the deadline (bubblewrap's info JSON)."""
    data = b""
    while (left := deadline - time.monotonic()) > 0 and select.select([fd], [], [], left)[0]:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        data += chunk
    return data


def _terminate(proc: subprocess.Popen[bytes], init_pid: int | None, graceful: bool = False) -> None:
    """End a sandbox: its supervisor exits on EOF (killing what is left), else the namespace is killed.

    Killing the namespace's init (while bubblewrap, its parent, still holds it unreaped, so the pid
    cannot have been reused) makes the kernel kill every process in the PID namespace; bubblewrap
    then reaps it and exits. Killing only bubblewrap would leave init to ``--die-with-parent``
    and an unreaped zombie behind.
    """
    if graceful and proc.poll() is None:
        try:
            if proc.stdin is not None:
                proc.stdin.close()
            proc.wait(timeout=2.0)
        except (OSError, subprocess.TimeoutExpired):
            pass
    if proc.poll() is None and init_pid is not None:
        try:
            os.kill(init_pid, signal.SIGKILL)
            proc.wait(timeout=2.0)
        except (OSError, subprocess.TimeoutExpired):
            pass
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


def _supervise() -> None:  # pragma: no cover - runs inside the sandbox, by the sandbox's python3
    """The supervisor, run inside the sandbox as its PID 1 (``python3 -I -S -c <this source>``).

    Protocol: one JSON object per line on stdin, one reply per line on stdout. ``ping``;
    ``put`` (path, base64 data) writes a file into the home; ``run`` (argv, tty, limits) runs a
    command under the limits and replies with its output, exit code and why it was stopped.

    Why PID 1: the kernel delivers no signal from inside the namespace to its init unless init
    handles it, so ``kill -9 -1`` or ``kill -9 1`` typed by the user cannot take the supervisor
    down; and orphans are reparented to it, so it reaps every zombie (they would count against
    ``RLIMIT_NPROC``). Self-contained (imports inside) because only its source enters the sandbox.
    """
    import base64
    import contextlib
    import ctypes
    import fcntl
    import json
    import os
    import resource
    import select
    import signal
    import struct
    import sys
    import termios
    import time

    # Not dumpable: commands run as the same uid, and must not ptrace us or open /proc/1/fd/1
    # (our reply pipe) to forge replies. PR_SET_DUMPABLE = 4.
    ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)
    me, home = os.getpid(), os.environ["HOME"]
    page = os.sysconf("SC_PAGE_SIZE")
    # SIGCHLD wakes select() through this pipe, so a command's exit is seen at once.
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    statuses: dict[int, int] = {}
    stop_cwd: dict[int, str] = {}

    def reap(main: int | None = None) -> None:
        """Collect every exited child (the command, and orphans reparented to us). A stop of the
        command ``main`` itself (it sent itself SIGSTOP) is seen too: where it is is noted from /proc,
        the one channel back it cannot forge by printing, and it is let go on."""
        if main is not None and main not in statuses:
            with contextlib.suppress(ChildProcessError):
                pid, status = os.waitpid(main, os.WNOHANG | os.WUNTRACED)
                if pid and os.WIFSTOPPED(status):
                    try:
                        stop_cwd[main] = os.readlink(f"/proc/{main}/cwd")
                    except OSError:
                        stop_cwd.pop(main, None)
                    os.kill(main, signal.SIGCONT)
                elif pid:
                    statuses[pid] = status
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            statuses[pid] = status

    def others() -> list[int]:
        """Live processes of the namespace besides us; zombies are already dead."""
        pids = []
        for name in os.listdir("/proc"):
            if name.isdigit() and int(name) != me:
                try:
                    with open(f"/proc/{name}/stat", "rb") as f:
                        state = f.read().rsplit(b")", 1)[1].split()[0]
                except (OSError, IndexError):
                    continue
                if state != b"Z":
                    pids.append(int(name))
        return pids

    def kill_all() -> None:
        # kill(-1) reaches every process we may signal except ourselves, in one pass over the task
        # list, and a process with SIGKILL pending cannot fork: one round usually does it.
        for _ in range(400):
            reap()
            if not others():
                break
            with contextlib.suppress(ProcessLookupError):
                os.kill(-1, signal.SIGKILL)
            time.sleep(0.002)
        reap()

    def resident_bytes() -> int:
        """Anonymous resident memory of all commands' processes: RSS less file-backed and shmem
        pages (shared libraries are not a hog; tmpfs files are bounded by the mount's size)."""
        total = 0
        for pid in others():
            try:
                with open(f"/proc/{pid}/statm", "rb") as f:
                    fields = f.read().split()
                total += (int(fields[1]) - int(fields[2])) * page
            except (OSError, IndexError, ValueError):
                continue
        return total

    def spawn(argv: list[str], lim: dict, output: int) -> int:
        pid = os.fork()
        if pid:
            return pid
        try:  # the child: its own session, the limits, then exec
            os.setsid()
            cpu = int(lim["cpu_seconds"])
            resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))  # SIGXCPU, then SIGKILL
            resource.setrlimit(resource.RLIMIT_AS, (lim["memory_bytes"],) * 2)
            resource.setrlimit(resource.RLIMIT_FSIZE, (lim["max_file_bytes"],) * 2)
            resource.setrlimit(resource.RLIMIT_NPROC, (lim["max_processes"],) * 2)
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            os.nice(10)  # a busy command yields the CPU to the runtime that renders its frames
            # Python ignores these; ignored signals stay ignored across exec, programs expect default.
            for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGCHLD):
                signal.signal(sig, signal.SIG_DFL)
            devnull = os.open("/dev/null", os.O_RDONLY)
            os.dup2(devnull, 0)
            os.dup2(output, 1)
            os.dup2(output, 2)
            os.closerange(3, 65536)
            os.execvp(argv[0], argv)
        except BaseException as e:
            try:
                os.write(2, f"{argv[0]}: {getattr(e, 'strerror', None) or e}\n".encode())
            finally:
                os._exit(127)
        return -1  # unreachable

    def run(req: dict) -> dict:
        lim = req["limits"]
        cap = lim["max_output_bytes"]
        if req.get("tty"):
            reader, writer = os.openpty()
            cols, rows = req["tty"]
            fcntl.ioctl(writer, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        else:
            reader, writer = os.pipe()
        start = time.monotonic()
        statuses.clear()
        stop_cwd.clear()
        try:
            main = spawn(req["argv"], lim, writer)
        except OSError as e:  # fork failed (memory): the command never ran
            os.close(reader)
            os.close(writer)
            return {"error": f"{req['argv'][0]}: {e.strerror}"}
        os.close(writer)  # only the command holds the write end now: EOF (EIO on a pty) when it is done
        out = bytearray()
        reason, truncated, eof = None, False, False
        deadline = start + lim["wall_timeout_s"]
        next_memory_check = start
        while True:
            reap(main)
            if main in statuses:
                break
            now = time.monotonic()
            if now >= deadline:
                reason = "timeout"
                break
            if now >= next_memory_check:
                next_memory_check = now + 0.05
                if resident_bytes() > lim["max_total_memory_bytes"]:
                    reason = "memory limit"
                    break
            # After EOF (``ls`` closes stdout itself) the command may still run: wait for SIGCHLD.
            ready = select.select([wake_r] if eof else [reader, wake_r], [], [], min(0.05, deadline - now))[0]
            if wake_r in ready:
                while True:
                    try:
                        if not os.read(wake_r, 512):
                            break
                    except BlockingIOError:
                        break
            if reader in ready:
                try:
                    chunk = os.read(reader, 65536)
                except OSError:  # EIO: every holder of the pty's slave side is gone
                    chunk = b""
                eof = not chunk
                room = cap - len(out)
                out += chunk[:room]
                if len(chunk) > room:
                    reason, truncated = "output limit", True
                    break
        kill_all()  # the command's leftovers (background jobs, a fork bomb) end with it
        # What the killed processes had written before they died is still in the pipe.
        while not eof and not truncated and select.select([reader], [], [], 1.0)[0]:
            try:
                chunk = os.read(reader, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                break
            room = cap - len(out)
            out += chunk[:room]
            truncated = len(chunk) > room
        os.close(reader)
        status = statuses.get(main, 0)
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            if reason is None:
                reason = {signal.SIGXCPU: "cpu limit", signal.SIGXFSZ: "file size limit"}.get(sig)
            code = 128 + sig
        else:
            code = os.WEXITSTATUS(status)
        return {"output": out.decode("utf-8", "replace"), "exit_code": code, "truncated": truncated,
                "killed_reason": reason, "elapsed_s": time.monotonic() - start, "stop_cwd": stop_cwd.get(main)}

    def put(req: dict) -> dict:
        target = os.path.realpath(os.path.join(home, req["path"]))
        if not target.startswith(home + "/"):
            return {"error": "outside the home"}
        try:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") as f:
                f.write(base64.b64decode(req["data"]))
        except OSError as e:
            return {"error": e.strerror or str(e)}
        return {"ok": True}

    for line in sys.stdin.buffer:
        req = json.loads(line)
        if req["op"] == "run":
            reply = run(req)
        elif req["op"] == "put":
            reply = put(req)
        else:
            reply = {"ok": True, "pid": me}
        sys.stdout.buffer.write(json.dumps(reply).encode() + b"\n")
        sys.stdout.buffer.flush()
    kill_all()


_SUPERVISOR_SOURCE = inspect.getsource(_supervise) + "\n_supervise()\n"
