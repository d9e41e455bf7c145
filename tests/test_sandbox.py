"""The hybrid mode's sandbox and reasoning engines: real containment, each test checks the real outcome.

Every attack runs for real inside bubblewrap (network, writes outside, fork bomb, disk, time,
output, memory) and the test looks at the host afterwards: the listener got no connection, the
file does not exist, no sandbox process is left, the host disk did not fill.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

if not Path("/usr/bin/bwrap").exists():
    pytest.skip("bubblewrap (/usr/bin/bwrap) is not installed", allow_module_level=True)

from neuralcomputer.data.terminal.captions import CaptionContext, TemplateCaptioner, new_screen_lines
from neuralcomputer.data.terminal.generators.arithmetic import Problem
from neuralcomputer.data.terminal.recorder import shell_prompt
from neuralcomputer.errors import NCError
from neuralcomputer.eval.probes import arithmetic_caption
from neuralcomputer.runtime import sandbox as sandbox_module
from neuralcomputer.runtime.engines import (
    LLMEngine,
    PythonEngine,
    ReasoningEngine,
    ShellEngine,
    make_engine,
)
from neuralcomputer.runtime.sandbox import MiB, Sandbox, SandboxLimits, run_sandboxed

REPO = Path(__file__).resolve().parents[1]
QUICK = SandboxLimits(wall_timeout_s=3.0)


def sandbox_processes(box: Sandbox) -> list[psutil.Process]:
    """Every host process of a sandbox: bubblewrap and all its descendants."""
    outer = psutil.Process(box.pids[0])
    return [outer, *outer.children(recursive=True)]


def namespace_pids(box: Sandbox) -> list[int]:
    """Host pids of every process in the sandbox's PID namespace, zombies included: found by
    namespace, not by parentage, so a process that left the tree would be found too."""
    namespace = os.readlink(f"/proc/{box.pids[1]}/ns/pid")
    found = []
    for pid in psutil.pids():
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/ns/pid") == namespace:
                found.append(pid)
    return found


def assert_quiet(box: Sandbox) -> None:
    """Between commands only bubblewrap and the supervisor (the namespace's init) exist."""
    procs = sandbox_processes(box)
    assert [p.pid for p in procs] == [box.pids[0], box.pids[1]], [p.cmdline()[:2] for p in procs]
    assert namespace_pids(box) == [box.pids[1]]


def assert_closed(pids: list[int], *, zombies_ok: bool = False) -> None:
    """None of ``pids`` runs any more; unless ``zombies_ok``, none is even left unreaped."""

    def remaining() -> list[int]:
        left = []
        for pid in pids:
            with contextlib.suppress(psutil.NoSuchProcess):
                status = psutil.Process(pid).status()
                if not (zombies_ok and status == psutil.STATUS_ZOMBIE):
                    left.append(pid)
        return left

    deadline = time.monotonic() + 2.0
    while remaining() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not remaining(), "sandbox processes survived"


@pytest.fixture
def box():
    sandbox = Sandbox(QUICK)
    yield sandbox
    pids = [p.pid for p in sandbox_processes(sandbox)] if sandbox.alive else []
    sandbox.close()
    assert_closed(pids)


# -- the sandbox ------------------------------------------------------------------------------------


def test_runs_commands_and_reports_exit_codes():
    result = run_sandboxed("echo hi; echo err >&2")
    assert (result.stdout, result.exit_code, result.timed_out, result.truncated) == ("hi\nerr\n", 0, False, False)
    assert run_sandboxed(["/bin/sh", "-c", "exit 3"]).exit_code == 3
    missing = run_sandboxed(["no-such-program"])
    assert missing.exit_code == 127 and "no-such-program" in missing.stdout
    inside = run_sandboxed("id -u; pwd; echo $HOME $TERM $LANG; hostname").stdout.split("\n")
    assert inside[:4] == ["65534", "/home/user", "/home/user xterm-256color C.UTF-8", "ncomp"]


def test_no_network(box):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.3)
    port = listener.getsockname()[1]
    probe = (f"import socket\ntry:\n socket.create_connection(('127.0.0.1', {port}), timeout=2)\n print('connected')\n"
             "except OSError as e: print(type(e).__name__)\n"
             "try:\n socket.create_connection(('1.1.1.1', 53), timeout=2)\n print('connected')\n"
             "except OSError as e: print(e.errno)\n"
             "try:\n socket.getaddrinfo('example.com', 80)\n print('resolved')\n"
             "except OSError as e: print(type(e).__name__)\n")
    result = box.run(["python3", "-c", probe])
    assert result.stdout.split() == ["ConnectionRefusedError", "101", "gaierror"]  # 101: ENETUNREACH
    with pytest.raises(TimeoutError):
        listener.accept()  # the host's listener never saw a connection
    listener.close()
    interfaces = [line.split(":")[0].strip() for line in box.run("cat /proc/net/dev").stdout.splitlines()[2:]]
    assert interfaces == ["lo"]


def test_writes_outside_the_home_fail(box, tmp_path):
    host_tmp = Path("/tmp") / f"nc-sandbox-escape-{os.getpid()}"
    targets = ["/etc/nc-test", "/usr/nc-test", "/nc-test", "/dev/nc-test", f"{REPO}/nc-test"]
    result = box.run("; ".join(f"touch {t} 2>/dev/null && echo wrote {t}" for t in targets)
                     + f"; echo inside > {host_tmp} && cat {host_tmp}; echo home > f && cat f; ls {REPO}")
    assert "wrote" not in result.stdout
    assert result.stdout.startswith("inside\nhome\n") and "No such file or directory" in result.stdout
    for target in [*targets, str(host_tmp)]:
        assert not Path(target).exists(), f"{target} appeared on the host"
    # Host secrets are not even visible.
    assert box.run("cat /etc/shadow /root/.bashrc").exit_code != 0


def test_fork_bomb_is_contained(box):
    host_before = len(psutil.pids())
    peak, done = [0], threading.Event()

    def watch() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], len(namespace_pids(box)))
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    start = time.monotonic()
    result = box.run("bomb() { bomb | bomb & }; bomb; sleep 1; echo survived")
    done.set()
    watcher.join()
    assert "Resource temporarily unavailable" in result.stdout and "survived" in result.stdout
    assert time.monotonic() - start < 3.0
    # At most max_processes in the namespace, the supervisor included.
    assert 10 < peak[0] <= QUICK.max_processes
    assert_quiet(box)
    assert len(psutil.pids()) < host_before + 20  # back to normal (other jobs on the host come and go)
    # The limit is exact: a program that forks until refused stops below max_processes.
    forks = box.run(["python3", "-c", "import os, time\nn = 0\ntry:\n while True:\n"
                     "  if os.fork() == 0:\n   time.sleep(30); os._exit(0)\n  n += 1\n"
                     "except OSError as e: print(n, e.errno)"])
    count, errno = map(int, forks.stdout.split())
    assert errno == 11 and 50 <= count < QUICK.max_processes
    assert_quiet(box)


def test_disk_is_bounded_and_the_host_disk_untouched(box):
    free_before = shutil.disk_usage("/").free
    one = box.run("head -c 100M /dev/zero > big; stat -c %s big")
    assert one.stdout.split()[-1] == str(QUICK.max_file_bytes)  # RLIMIT_FSIZE
    many = box.run("for i in $(seq 20); do head -c 15M /dev/zero > f$i; done; df -B1 --output=used . | tail -1")
    assert "No space left on device" in many.stdout
    assert int(many.stdout.split()[-1]) <= QUICK.max_disk_bytes
    elsewhere = box.run("head -c 40M /dev/zero > /tmp/x; head -c 4M /dev/zero > /dev/shm/x; "
                        "du -sb /tmp/x /dev/shm/x | cut -f1")
    tmp_size, shm_size = map(int, elsewhere.stdout.split()[-2:])
    assert tmp_size <= QUICK.max_disk_bytes // 2 and shm_size <= MiB
    # About 340 MiB were attempted; none of it may reach the host's disk (other jobs write too: slack).
    assert free_before - shutil.disk_usage("/").free < 64 * MiB


def test_runaway_commands_are_killed_at_the_timeout(box):
    for command in ("sleep 1000", "while true; do :; done", "sleep 1000 & sleep 1000 & wait"):
        start = time.monotonic()
        result = box.run(command)
        elapsed = time.monotonic() - start
        assert result.timed_out and result.killed_reason == "timeout" and result.exit_code == 137
        assert QUICK.wall_timeout_s <= elapsed < QUICK.wall_timeout_s + 1.0
        assert_quiet(box)


def test_background_jobs_end_with_their_command(box):
    result = box.run("sleep 1000 & disown; setsid sleep 1000 & echo started")
    assert result.stdout == "started\n" and result.elapsed_s < 1.0
    assert_quiet(box)


def test_huge_output_is_truncated_at_the_cap(box):
    start = time.monotonic()
    result = box.run("yes")
    assert result.truncated and result.killed_reason == "output limit"
    assert len(result.stdout.encode()) == QUICK.max_output_bytes and set(result.stdout) == {"y", "\n"}
    assert time.monotonic() - start < 2.0  # killed at the cap, not at the timeout
    exact = box.run(f"head -c {QUICK.max_output_bytes} /dev/zero | tr '\\0' x")
    assert not exact.truncated and len(exact.stdout) == QUICK.max_output_bytes
    assert_quiet(box)


def test_memory_is_bounded(box):
    hog = box.run(["python3", "-c", "x = bytearray(1 << 30)"])  # 1 GiB > RLIMIT_AS
    assert hog.exit_code == 1 and "MemoryError" in hog.stdout
    assert_quiet(box)
    # Many processes, each under RLIMIT_AS, together over max_total_memory_bytes: the watchdog. Its own
    # wall limit: four interpreters start and fill 200 MiB each well within it on a loaded 2-core CI (the
    # quick 3 s ran out once under the test workers and a training job), and far before their 30 s sleep
    many = run_sandboxed("for i in 1 2 3 4; do python3 -c 'x = b\"1\" * (200 << 20); import time; time.sleep(30)' & done; wait",
                         limits=SandboxLimits(wall_timeout_s=20.0))
    assert many.killed_reason == "memory limit" and many.elapsed_s < 20.0


def test_cpu_time_is_bounded():
    limits = SandboxLimits(wall_timeout_s=5.0, cpu_seconds=1)
    result = run_sandboxed(["python3", "-c", "while True: pass"], limits=limits)
    assert result.killed_reason == "cpu limit" and result.exit_code == 128 + 24  # SIGXCPU
    assert result.elapsed_s < 4.5  # 1 s of CPU; the wall clock depends on the host's load


def test_the_supervisor_survives_kill_all(box):
    box.run("echo kept > f")
    result = box.run("kill -9 -1; kill -9 1; echo after")
    assert result.stdout.endswith("after\n") and result.killed_reason is None
    assert box.run("cat f").stdout == "kept\n" and box.restarts == 0


def test_close_leaves_nothing_behind(tmp_path):
    (tmp_path / "seed.txt").write_text("from the host\n")
    box = Sandbox(QUICK, workdir=tmp_path)
    assert box.run("cat seed.txt; echo changed > seed.txt; echo x > new.txt").stdout == "from the host\n"
    assert (tmp_path / "seed.txt").read_text() == "from the host\n" and not (tmp_path / "new.txt").exists()
    outer, init = box.pids
    # The home is a tmpfs in the sandbox's own mount namespace: it exists only as long as init does.
    mounts = Path(f"/proc/{init}/mounts").read_text()
    assert any(line.split()[1:3] == ["/home/user", "tmpfs"] for line in mounts.splitlines())
    pids = [p.pid for p in sandbox_processes(box)]
    box.close()
    assert_closed(pids)
    assert not Path(f"/proc/{init}").exists()
    box.close()  # twice is fine
    with pytest.raises(NCError, match="closed"):
        box.run("echo hi")


def test_the_sandbox_dies_with_its_host_process():
    host = subprocess.Popen(
        [sys.executable, "-c", "from neuralcomputer.runtime.sandbox import Sandbox\nbox = Sandbox()\n"
         "print(*box.pids, flush=True)\nimport time\ntime.sleep(60)"],
        cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        pids = [int(p) for p in host.stdout.readline().split()]
        assert len(pids) == 2 and all(psutil.pid_exists(p) for p in pids)
    finally:
        host.kill()  # SIGKILL: no finalizer runs; bubblewrap's --die-with-parent must do it
        host.wait()
    assert_closed(pids, zombies_ok=True)  # orphaned to the host's init, which reaps them when it will


def test_clear_errors():
    with pytest.raises(NCError, match="positive"):
        SandboxLimits(cpu_seconds=0)


def test_missing_bwrap_is_one_clear_error(monkeypatch):
    monkeypatch.setattr(sandbox_module.shutil, "which", lambda name: None)
    monkeypatch.setattr(sandbox_module.os, "access", lambda path, mode: False)
    with pytest.raises(NCError, match="bubblewrap"):
        Sandbox()


# -- the engines ------------------------------------------------------------------------------------


@pytest.fixture
def shell():
    engine = ShellEngine(cols=80, rows=24, limits=QUICK)
    yield engine
    pids = [p.pid for p in sandbox_processes(engine.sandbox)]
    engine.close()
    assert_closed(pids)


def test_shell_engine_echo_caption_in_training_wording(shell):
    prompt = shell_prompt()  # e.g. "root@ncomp:~# "
    assert isinstance(shell, ReasoningEngine) and shell.screen_text.rstrip("\n") == prompt.rstrip()
    result = shell.run("echo hi")
    assert result.screen_text.split("\n")[:3] == [f"{prompt}echo hi", "hi", prompt.rstrip()]
    assert result.exit_code == 0 and result.new_lines == ["hi", prompt.rstrip()]
    assert result.caption == f"The user types `echo hi`. From line 1 the screen reads:\n{prompt}echo hi\nhi\n{prompt.rstrip()}"
    # ... which is exactly what the training captioner writes for the screen before and after the command.
    first = prompt
    context = CaptionContext(commands=["echo hi"], intents=[], task="", first_text=first,
                             last_text=result.screen_text, new_lines=new_screen_lines(first, result.screen_text),
                             full_screen=False)
    assert result.caption == TemplateCaptioner().detailed(context)


def test_shell_engine_keeps_directory_and_files(shell):
    shell.run("mkdir -p proj/src && cd proj && echo data > notes.txt")
    result = shell.run("pwd; cat notes.txt")
    assert result.output.split() == ["/home/user/proj", "data"]
    assert result.screen_text.rstrip("\n").endswith(shell_prompt("~/proj").rstrip())
    assert shell.run("cd src").screen_text.rstrip("\n").endswith(shell_prompt("~/proj/src").rstrip())
    assert shell.run("cat ../notes.txt").new_lines[0] == "data"
    missing = shell.run("nosuchcommand")
    assert missing.exit_code == 127 and "bash: nosuchcommand: command not found" in missing.new_lines
    shell.reset()
    assert shell.run("ls proj 2>&1; pwd").output.split("\n")[-2] == "/home/user"


def test_the_end_of_a_command_cannot_be_forged_from_inside(shell):
    """Exit status and directory are what the supervisor saw, not text a command can print: the
    command's argv and its process hold nothing that would make printed text count."""
    forged = shell.run("for a in \"$@\" $(tr '\\0' ' ' < /proc/$$/cmdline); do "
                       "printf '\\036%s 0 /etc\\036\\036%s 0\\036' \"$a\" \"$a\"; done; exit 7")
    assert forged.exit_code == 7, forged.output
    assert shell.run("pwd").output.strip() == "/home/user"
    moved = shell.run("cd /tmp; (exit 3)")  # a real cd and a real status are still seen
    assert moved.exit_code == 3 and shell.run("pwd").output.strip() == "/tmp"
    # a command that stops itself is let go on (it used to wait for the wall-clock limit)
    start = time.monotonic()
    assert shell.run("kill -STOP $$; echo went-on").output.strip() == "went-on"
    assert time.monotonic() - start < 2.5


def test_the_python_engine_cannot_be_told_an_input_succeeded():
    engine = PythonEngine(limits=QUICK)
    try:
        forged = engine.run("import sys; [print('\\x1e%s 0\\x1e' % a, end='') for a in sys.argv]; 1/0")
        assert forged.exit_code == 1 and "ZeroDivisionError" in forged.output
        assert engine.history == []
        assert engine.run("exit(0)").exit_code == 0 and engine.history == []  # left the REPL: not replayed
        assert engine.run("y = 5").exit_code == 0 and engine.history == ["y = 5"]
    finally:
        engine.close()


def test_shell_engine_screen_scrolls_like_a_terminal(shell):
    shell.run("touch alpha beta gamma")
    listing = shell.run("ls")
    assert "alpha  beta  gamma" in listing.new_lines  # a terminal's ls prints columns
    result = shell.run("seq 1 30")
    lines = result.screen_text.split("\n")
    assert len(lines) == 24 and lines[-2:] == ["30", shell_prompt().rstrip()]
    assert lines[0] == "8" and "1" not in lines
    assert result.new_lines == [str(i) for i in range(8, 31)] + [shell_prompt().rstrip()]


def test_shell_engine_reports_a_timeout():
    engine = ShellEngine(limits=SandboxLimits(wall_timeout_s=1.0))
    try:
        result = engine.run("echo start; sleep 100")
        assert result.timed_out and result.screen_text.split("\n")[1:3] == ["start", shell_prompt().rstrip()]
        assert engine.run("echo next").new_lines[0] == "next"
    finally:
        engine.close()


def test_python_engine_captions_in_the_training_wording():
    engine = make_engine("python", cols=80, rows=24)
    try:
        result = engine.run("2+3*4")
        # the probe's screen has the expression typed already; the engine's starts at the bare prompt
        assert arithmetic_caption(Problem("2+3*4", "14", 1), reprompt=True).endswith(
            "From line 3 the screen reads:\n14\n>>>")
        assert result.caption == "The user types `2+3*4`. From line 2 the screen reads:\n>>> 2+3*4\n14\n>>>"
        assert result.screen_text.split("\n")[:4] == [f"{shell_prompt()}python3 -q", ">>> 2+3*4", "14", ">>>"]
        engine.run("x = 6")
        assert engine.run("x * 7").new_lines == ["42", ">>>"]
        error = engine.run("1/0")
        assert error.exit_code == 1 and error.new_lines[-2:] == ["ZeroDivisionError: division by zero", ">>>"]
    finally:
        engine.close()


def test_llm_engine_with_a_fake_client():
    prompts: list[str] = []

    def client(prompt: str) -> str:
        prompts.append(prompt)
        return f"```\n{shell_prompt()}cowsay moo\nmoo\n{shell_prompt()}\n```"

    engine = make_engine("llm", client=client, cols=40, rows=6)
    assert isinstance(engine, LLMEngine)
    result = engine.run("cowsay moo")
    assert "`cowsay moo`" in prompts[0] and shell_prompt().rstrip() in prompts[0] and "40 columns x 6 rows" in prompts[0]
    assert result.output == "moo\n" and result.exit_code is None
    assert result.caption == (f"The user types `cowsay moo`. From line 1 the screen reads:\n{shell_prompt()}cowsay moo\n"
                              f"moo\n{shell_prompt().rstrip()}")
    with pytest.raises(NCError, match="client"):
        make_engine("llm")
    with pytest.raises(NCError, match="expected one of"):
        make_engine("quantum")
    with pytest.raises(NCError, match="one line"):
        engine.run("echo a\necho b")


def test_engine_close_leaves_no_process():
    engine = PythonEngine(limits=QUICK)
    pids = [p.pid for p in sandbox_processes(engine.sandbox)]
    engine.run("1 + 1")
    engine.close()
    assert_closed(pids)


def test_python_engine_keeps_working_past_the_argv_limit():
    """Its replayed history is one argv string (128 KiB at most): old inputs give way, none fails."""
    engine = make_engine("python", cols=80, rows=24)
    try:
        for i in range(30):
            assert engine.run(f's{i} = "é" * 990').exit_code == 0
        result = engine.run("len(s29) + 1")
        assert result.exit_code == 0 and "991" in result.output
    finally:
        engine.close()
