"""The scripted policy, the accessibility helper and the external-agent interface, on a real XFCE desktop.

Desktop tests start a private Xvfb + XFCE session (about 2 s) and are skipped cleanly where the
desktop packages or the system Python's AT-SPI bindings are missing.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from neuralcomputer.data.desktop import a11y
from neuralcomputer.data.desktop.actions import read_actions
from neuralcomputer.data.desktop.agent import AgentError, AgentPolicy, ReplayClient, validate_reply
from neuralcomputer.data.desktop.scripted import ScriptedPolicy, task_summary
from neuralcomputer.data.desktop.task_context import TASKS, TaskContext, TaskFailed, TaskRecord
from neuralcomputer.errors import NCError


def _have_atspi() -> bool:
    try:
        return subprocess.run([a11y.SYSTEM_PYTHON, "-c", "import gi; gi.require_version('Atspi', '2.0')"],
                              capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


NEEDS_DESKTOP = pytest.mark.skipif(
    not (shutil.which("Xvfb") and shutil.which("xfce4-session") and shutil.which("xprop") and _have_atspi()),
    reason="needs Xvfb, XFCE4, x11-utils and the system Python's AT-SPI bindings (make setup)")


def _start_desktop(tmp_path: Path):
    """A started Desktop (its start retries a session that exits while starting)."""
    from neuralcomputer.data.desktop.xsession import Desktop

    return Desktop(workdir=tmp_path).__enter__()


@pytest.fixture
def desktop(tmp_path: Path):
    from neuralcomputer.data.desktop.actor import Actor

    d = _start_desktop(tmp_path)
    try:
        actor = Actor(d, np.random.default_rng(1))
        yield d, actor
        actor.release_all()
        actor.close()
    finally:
        d.close()


# --------------------------------------------------------------------------------------------------
# Without a desktop


def test_registry_has_twenty_tasks_and_rejects_unknown_names() -> None:
    assert len(TASKS) >= 20
    with pytest.raises(NCError, match="unknown scripted task"):
        ScriptedPolicy(tasks=("no_such_task",))
    from neuralcomputer.data.desktop.policies import get_policy

    assert get_policy("scripted").name == "scripted"


def test_describe_captions_and_summary() -> None:
    policy = ScriptedPolicy()
    policy.log += [TaskRecord("terminal_echo", True, 0.0, 2.0, "alpha12"),
                   TaskRecord("terminal_echo", False, 2.0, 5.0, "timed out"),
                   TaskRecord("window_move", True, 5.0, 6.0, "")]
    assert policy.describe()[0] == "terminal_echo: ok (alpha12)"
    caps = policy.captions([{"type": "click", "x": 1, "y": 2, "button": 1, "count": 1}])
    assert "terminal echo" in caps["semantic"] and "window_move: ok" in caps["regular"]
    summary = task_summary(policy.log)
    assert summary["terminal_echo"]["rate"] == 0.5 and summary["window_move"]["attempts"] == 1


def test_validate_reply_names_the_bad_action() -> None:
    ok = [{"type": "click", "x": 5, "y": 5, "button": 1, "count": 1}, {"type": "key", "keys": ["ctrl", "s"]}]
    assert validate_reply(ok, 100, 100, "t") == ok
    assert validate_reply("done", 100, 100, "t") == "done"
    with pytest.raises(AgentError, match="step 3 action 1: .*click.* needs y"):
        validate_reply([ok[0], {"type": "click", "x": 1}], 100, 100, "step 3")
    with pytest.raises(AgentError, match=r"off the 100x100 screen"):
        validate_reply([{"type": "move", "x": 100, "y": 0}], 100, 100, "s")
    for chord in (["alt", "F4"], ["Alt_L", "F4"], ["shift", "alt", "F4"], ["Control_R", "Alt_L", "delete"]):
        with pytest.raises(AgentError, match="not allowed"):
            validate_reply([{"type": "key", "keys": chord}], 100, 100, "s")
    assert validate_reply([{"type": "key", "keys": ["alt", "F5"]}], 100, 100, "s")  # only the unsafe ones
    with pytest.raises(AgentError, match="expected a list"):
        validate_reply({"type": "move"}, 100, 100, "s")


class _FakeScreen:
    width, height = 64, 48

    def screenshot(self) -> np.ndarray:
        return np.zeros((48, 64, 3), np.uint8)


class _RecordingActor:
    def __init__(self) -> None:
        self.done: list[tuple] = []

    def __getattr__(self, name: str):
        return lambda *a, **k: self.done.append((name, a, k))


def test_agent_policy_never_half_executes_a_bad_reply() -> None:
    good = [{"type": "move", "x": 3, "y": 4}]
    bad = [{"type": "move", "x": 1, "y": 1}, {"type": "scroll", "x": 1, "y": 1, "dx": 0}]
    client = ReplayClient([good, bad, good])
    policy = AgentPolicy(client, ["first task", "second task"], settle=0.0)
    actor = _RecordingActor()
    policy.run(actor, _FakeScreen(), np.random.default_rng(0), 10)
    moves = [d for d in actor.done if d[0] == "move"]
    assert moves == [("move", (3, 4), {})] * 2  # the bad reply's valid first action was never performed
    assert "step 1 action 1" in policy.log[0]["error"] and not policy.log[0]["done"]
    assert policy.log[1]["done"] and policy.log[1]["actions"] == 1  # the next task goes on
    assert client.calls[0][0] == "first task" and client.calls[0][2] > 0  # a PNG was sent
    with pytest.raises(AgentError, match="step 1"):
        AgentPolicy(ReplayClient([good, bad]), ["t"], settle=0.0, strict=True).run(
            _RecordingActor(), _FakeScreen(), np.random.default_rng(0), 10)


# --------------------------------------------------------------------------------------------------
# On a real desktop


@NEEDS_DESKTOP
def test_a11y_finds_the_panel_and_its_menu(desktop) -> None:
    d, actor = desktop
    button = a11y.find(d, "toggle button", "Applications", app="xfce4-panel", timeout=20)
    assert button.on_screen(d.width, d.height) and button.width > 10
    actor.click(*button.center)
    item = a11y.find(d, "menu item", "Terminal Emulator", app="xfce4-panel", timeout=5)
    assert item.y >= button.y + button.height - 2  # the menu opens below the top panel
    actor.key(["Escape"])
    with pytest.raises(a11y.WidgetNotFound, match="No Such Button"):
        a11y.find(d, "push button", "No Such Button", timeout=0.5)


@NEEDS_DESKTOP
@pytest.mark.slow
def test_tasks_are_verified_by_their_effects(desktop) -> None:
    d, actor = desktop
    rng = np.random.default_rng(3)
    policy = ScriptedPolicy()
    home = Path(d.env["HOME"])
    for name in ("terminal_echo", "calculator_buttons", "editor_save_file", "files_new_folder", "window_move",
                 "close_window_button"):
        record = policy.run_task(name, actor, d, rng)
        assert record is not None and record.ok, f"{name}: {record}"
    log = {r.name: r for r in policy.log}
    # checked again here, independently of the tasks' own checks
    saved = home / log["editor_save_file"].detail
    assert saved.read_text().startswith("Shopping list ")
    assert (home / log["files_new_folder"].detail).is_dir()
    expr, result = log["calculator_buttons"].detail.split("=")
    a, op, b = (expr.partition("+") if "+" in expr else expr.partition("*"))
    assert int(result) == (int(a) + int(b) if op == "+" else int(a) * int(b))
    assert [w for w in d.windows() if "galculator" in w.wm_class.lower()]
    assert len(actor.metas) > 20 and d.alive()


@NEEDS_DESKTOP
def test_a_missing_target_fails_cleanly_within_its_deadline(desktop, monkeypatch) -> None:
    d, actor = desktop

    def hopeless(ctx: TaskContext) -> str:
        ctx.find("push button", "No Such Button", timeout=60)  # longer than the task's deadline
        return "found?"

    def raising(ctx: TaskContext) -> str:
        ctx.wait_window("no-such-app", timeout=60)
        raise AssertionError("unreachable")

    monkeypatch.setitem(TASKS, "hopeless", hopeless)
    monkeypatch.setitem(TASKS, "never_opens", raising)
    policy = ScriptedPolicy(tasks=("hopeless", "never_opens"), task_seconds=3.0)
    for name in ("hopeless", "never_opens"):
        t0 = time.monotonic()
        record = policy.run_task(name, actor, d, np.random.default_rng(0))
        assert record is not None and not record.ok
        assert time.monotonic() - t0 < 8.0, record
    assert "No Such Button" in policy.log[0].detail and "no-such-app" in policy.log[1].detail
    assert d.alive()
    with pytest.raises(TaskFailed):
        TaskContext(actor, d, np.random.default_rng(0), time.monotonic() + 10).find("menu", "Nope", timeout=0.3)


@NEEDS_DESKTOP
@pytest.mark.slow
def test_scripted_episode_through_the_collector(tmp_path: Path) -> None:
    from neuralcomputer.data.desktop.collect import collect_episode

    out = tmp_path / "ds"
    result = collect_episode("scripted", seed=5, index=0, out=out, seconds=16.0, workdir=tmp_path / "work")
    record = result["record"]
    assert record is not None, result["faults"]
    frames = read_actions(out / record["actions"])
    assert len(frames) == record["frames"] >= 0.9 * 16 * 15
    metas = [(f.frame, m) for f in frames for m in f.meta]
    assert len(metas) >= 5
    assert record["pointer_mismatches"] == 0
    # every click lands: within 1.5 s of a click starting, the read-back pointer is on its target
    for frame, m in metas:
        if m["type"] == "click":
            later = [f.pointer for f in frames[frame:frame + 23]]
            assert (m["x"], m["y"]) in later or frame + 23 > len(frames), (frame, m)
    assert "purposeful tasks" in record["captions"]["semantic"]
    assert "Tasks:" in record["captions"]["regular"]
    payload = np.load(out / record["path"])
    assert payload["pointer"].shape == (record["frames"], 2)
    assert [tuple(p) for p in payload["pointer"]] == [f.pointer for f in frames]


@NEEDS_DESKTOP
def test_agent_policy_drives_the_desktop_with_a_fake_client(desktop) -> None:
    d, actor = desktop

    class ClickTheWindow:
        """A fake agent told about one window: clicks the middle of its title bar, then is done."""

        def __init__(self, title: str) -> None:
            self.title = title

        def next_actions(self, screenshot_png: bytes, task: str, history: list) -> list | str:
            assert screenshot_png.startswith(b"\x89PNG")
            if history:
                return "done"
            stack = d.windows()  # bottom to top
            i = next(i for i, w in enumerate(stack) if self.title in w.title)
            win, above = stack[i], [w for w in stack[i + 1:] if w.visible]
            free = [(x, y) for y in range(win.y + 10, win.y + win.height - 10, 10)
                    for x in range(win.x + 10, win.x + win.width - 10, 10)
                    if not any(w.x - 10 <= x < w.x + w.width + 10 and w.y - 40 <= y < w.y + w.height + 10
                               for w in above)]
            x, y = free[len(free) // 2]
            return [{"type": "click", "x": x, "y": y, "button": 1, "count": 1}]

    d.launch(["galculator"])
    calc = d.wait_for_window("galculator", timeout=20)
    d.launch(["mousepad"])
    editor = d.wait_for_window("Mousepad", timeout=20)
    deadline = time.monotonic() + 5
    while getattr(d.active_window(), "id", None) != editor.id and time.monotonic() < deadline:
        time.sleep(0.2)
    policy = AgentPolicy(ClickTheWindow("galculator"), ["bring the calculator to the front"], settle=0.5)
    policy.run(actor, d, np.random.default_rng(0), 20)
    assert policy.log[0]["done"] and policy.log[0]["actions"] == 1, policy.log
    assert getattr(d.active_window(), "id", None) == calc.id
    assert actor.metas[-1][1]["type"] == "click"
