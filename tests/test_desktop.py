"""Desktop collection on a real Xvfb + XFCE4 session: the Desktop/Actor API, episodes of every
registered policy checked frame by frame against their action logs, faults, and process hygiene."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from neuralcomputer.data.dataset import load_manifest, read_clip_payload, write_clip_payload
from neuralcomputer.data.desktop.actions import read_actions
from neuralcomputer.data.desktop.actor import Actor, bezier_path
from neuralcomputer.data.desktop.collect import Capture, bucket_actions, collect_desktop, pointer_mismatches
from neuralcomputer.data.desktop.cursor import cursor_sprite
from neuralcomputer.data.desktop.policies import POLICIES, _load_plugins, default_captions, register
from neuralcomputer.data.desktop.xsession import Desktop, marked_processes
from neuralcomputer.errors import NCError
from tests.stress_interrupts import run_trial

HAVE_DESKTOP = all(shutil.which(p) for p in ("Xvfb", "xfce4-session", "dbus-daemon"))
needs_desktop = pytest.mark.skipif(not HAVE_DESKTOP, reason="Xvfb / XFCE4 not installed (make setup installs them)")
SIZE = (640, 480)


@pytest.fixture(autouse=True)
def desktop_tag(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> str:
    """A marker prefix for this test's desktops (other desktops may run on the machine meanwhile)."""
    tag = f"t{os.getpid()}-{abs(hash(request.node.nodeid)) % 10**8}-"
    monkeypatch.setenv("NC_DESKTOP_TAG", tag)
    return tag


def _assert_no_orphans(prefix: str, timeout: float = 5.0) -> None:
    """No process of this test's desktops is left (Xvfb, dbus, XFCE and launched apps all carry the marker)."""
    deadline = time.monotonic() + timeout
    while True:
        left = marked_processes(prefix=prefix)
        if not left:
            return
        if time.monotonic() > deadline:
            names = []
            for p in left:
                try:
                    names.append((p.pid, p.name()))
                except Exception:
                    continue
            raise AssertionError(f"orphans left: {names}")
        time.sleep(0.2)


# --------------------------------------------------------------------------------------------------
# Without a display

def test_bucket_actions_and_pointer_check() -> None:
    cap = Capture(fps=10.0, t0=100.0, times=[100.0, 100.1, 100.2], pointer=[(5, 5), (5, 5), (40, 50)],
                  buffer_index=[0, 0, 0])
    events = [(99.9, {"type": "move", "x": 5, "y": 5}), (100.15, {"type": "move", "x": 40, "y": 50}),
              (100.25, {"type": "down", "button": 1}), (100.5, {"type": "up", "button": 1})]
    metas = [(100.14, {"type": "click", "x": 40, "y": 50, "button": 1, "count": 1})]
    frames = bucket_actions(cap, events, metas)
    assert [len(f.events) for f in frames] == [1, 1, 1]  # the last event is after the recording
    assert frames[1].meta and frames[1].t == pytest.approx(0.1)
    assert pointer_mismatches(frames) == []
    frames[2].pointer = (60, 50)
    assert [m["frame"] for m in pointer_mismatches(frames)] == [2]


def test_bezier_path_ends_on_target() -> None:
    path = bezier_path((0, 0), (300, 100), 20, np.random.default_rng(0))
    assert path.shape == (20, 2) and np.allclose(path[-1], (300, 100))
    steps = np.hypot(*np.diff(path, axis=0).T)
    assert steps[len(steps) // 2] > steps[0] and steps[len(steps) // 2] > steps[-1]  # eased: fast middle


def test_captions_and_payload_extra(tmp_path: Path) -> None:
    caps = default_captions("random activity", [{"type": "click", "x": 1, "y": 2, "button": 3, "count": 1},
                                                {"type": "type", "text": "ab"}])
    assert "right click at (1, 2)" in caps["detailed"] and "1 click" in caps["regular"]
    frames = np.zeros((2, 4, 4, 3), np.uint8)
    frames[1] += 7
    index = np.array([0, 1, 1])
    write_clip_payload(tmp_path / "c.npz", frames, index, ["", ""], np.zeros((3, 3)),
                       extra={"pointer": np.array([[1, 2], [3, 4], [5, 6]], np.int16)})
    back = read_clip_payload(tmp_path / "c.npz")
    assert back["pointer"].tolist() == [[1, 2], [3, 4], [5, 6]] and back["frames"].shape == (3, 4, 4, 3)
    with pytest.raises(NCError, match="one row per frame"):
        write_clip_payload(tmp_path / "d.npz", frames, index, ["", ""], np.zeros((3, 3)), extra={"pointer": np.zeros((2, 2))})


def test_malformed_actions_file_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "a.actions.jsonl"
    path.write_text('{"frame": 0, "pointer": [1, 2]}\n{"frame": 1}\n{"frame": 2, "events": [{"type": "move", "x": 1}]}\n')
    with pytest.raises(NCError, match=r"a\.actions\.jsonl:3"):
        read_actions(path)


# --------------------------------------------------------------------------------------------------
# A live desktop

@pytest.fixture(scope="module")
def desktop():
    tag = f"m{os.getpid()}-"
    old = os.environ.get("NC_DESKTOP_TAG")
    os.environ["NC_DESKTOP_TAG"] = tag
    try:
        with Desktop(*SIZE) as d:
            yield d
    finally:
        if old is None:
            os.environ.pop("NC_DESKTOP_TAG", None)
        else:
            os.environ["NC_DESKTOP_TAG"] = old
    _assert_no_orphans(tag)


@needs_desktop
@pytest.mark.skipif(not shutil.which("strace"), reason="strace slows Xvfb's writes down for this test")
def test_xvfb_survives_a_slow_display_number(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             desktop_tag: str) -> None:
    """Xvfb writes its display number and the newline in two writes, and dies (exit status 1, "Cannot
    write display number to fd N") when the reader has closed the pipe in between: the start-up
    failures seen under load. Here every write of a real Xvfb waits 0.3 s (strace), so a reader that
    stops at the number always loses the race."""
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "Xvfb").write_text(f"#!/bin/sh\nexec strace -f -qq -o /dev/null -e trace=write "
                               f"-e inject=write:delay_enter=300000 {shutil.which('Xvfb')} \"$@\"\n")
    (shim / "Xvfb").chmod(0o755)
    monkeypatch.setenv("PATH", f"{shim}:{os.environ['PATH']}")
    d = Desktop(*SIZE, start_timeout=120)
    try:
        d.start()  # one start, no retries
        time.sleep(1.0)  # the newline written after the number
        assert d.alive(), d.log_tail()
    finally:
        d.close()
    _assert_no_orphans(desktop_tag)


@needs_desktop
def test_desktop_temp_files_stay_in_its_profile(desktop: Desktop) -> None:
    # xfce4-session's ICE auth files (.xfsm-ICE-*) went to /tmp and stayed there after every kill
    tmp = Path(desktop.env["TMPDIR"])
    assert tmp.is_dir() and desktop.env["HOME"].startswith(str(tmp.parent))
    assert list(tmp.glob(".xfsm-ICE-*")), sorted(p.name for p in tmp.iterdir())


@needs_desktop
def test_desktop_is_up_and_reads_back(desktop: Desktop) -> None:
    shot = desktop.screenshot()
    assert shot.shape == (SIZE[1], SIZE[0], 3) and shot.dtype == np.uint8 and shot.std() > 5
    windows = desktop.windows()
    docks = [w for w in windows if w.type == "dock"]
    assert docks and any(w.type == "desktop" for w in windows)
    assert docks[0].width == SIZE[0] and docks[0].y == 0
    actor = Actor(desktop, rng=np.random.default_rng(0))
    actor.move(200, 150, duration=0.2)
    assert desktop.pointer() == (200, 150)
    assert [m["type"] for _, m in actor.metas] == ["move"] and actor.events[-1][1] == {"type": "move", "x": 200, "y": 150}
    # A click on the panel's Applications button (found from the panel's geometry) opens the menu.
    before = desktop.screenshot()
    actor.click(docks[0].x + 30, docks[0].center[1])
    menu = desktop.wait_for_window(lambda w: w.type == "popup" and w.height > 60, timeout=10)
    time.sleep(0.3)
    assert menu.y >= docks[0].height - 2
    assert np.abs(desktop.screenshot().astype(int) - before).sum() > 10_000
    actor.key("Escape")
    actor.close()


@needs_desktop
def test_launch_and_wait_for_window(desktop: Desktop) -> None:
    proc = desktop.launch(["mousepad"])
    win = desktop.wait_for_window("mousepad", timeout=20)
    assert win.visible and win.width > 100 and proc.poll() is None
    assert desktop.alive()
    actor = Actor(desktop)
    actor.click(*win.center)
    actor.type("Hello", cps=40)
    time.sleep(0.3)
    active = desktop.active_window()
    assert active is not None and "mousepad" in active.wm_class.lower()
    actor.key(["ctrl", "a"])
    actor.key("BackSpace")
    actor.close()


@needs_desktop
def test_teardown_after_exception_leaves_nothing(desktop_tag: str) -> None:
    token = None
    with pytest.raises(RuntimeError), Desktop(*SIZE) as d:
        token = d.token
        assert marked_processes(token)
        raise RuntimeError("boom")
    assert token and token.startswith(desktop_tag) and not marked_processes(token)
    _assert_no_orphans(desktop_tag)


# --------------------------------------------------------------------------------------------------
# Episodes

def _policies_under_test() -> list[str]:
    _load_plugins()  # the scripted policy gets the same checks once its module registers it
    return sorted(name for name in POLICIES if not name.startswith("test-"))


def _check_episode(root: Path, record: dict) -> None:
    from neuralcomputer.data.desktop.episode import read_desktop_clip
    from neuralcomputer.eval.gui import locate_cursor

    payload = read_clip_payload(root / record["path"])
    actions = read_actions(root / record["actions"], fps=record["fps"])
    # stored cursor-free, each distinct framebuffer once; the cursor is drawn in when read
    assert record["cursor_at_read"] and not payload["cursor_drawn"].any()
    assert len(payload["unique_frames"]) == record["unique_frames"] <= record["frames"]
    frames, pointer = read_desktop_clip(root / record["path"]).frames(), payload["pointer"]
    t = record["frames"]
    assert frames.shape == (t, record["height"], record["width"], 3) and pointer.shape == (t, 2)
    assert len(actions) == t and payload["frame_time"].shape == (t,)
    assert [list(a.pointer) for a in actions] == pointer.tolist()
    assert np.all(np.diff(payload["frame_time"]) > 0)
    assert record["action_times"] == [a.t for a in actions if a.meta]
    assert record["pointer_mismatches"] <= max(1, t // 100), record
    assert pointer_mismatches(actions) == [] or len(pointer_mismatches(actions)) == record["pointer_mismatches"]
    # The cursor drawn at read is where the log says the pointer was.
    sprite = cursor_sprite()
    checked = found = 0
    for i in np.linspace(0, t - 1, 12).astype(int):
        x, y = pointer[i]
        if not (2 <= x < record["width"] - 14 and 2 <= y < record["height"] - 20):
            continue
        checked += 1
        hit = locate_cursor(frames[i], sprite)
        if hit is not None and abs(hit[0] - x) <= 1 and abs(hit[1] - y) <= 1:
            found += 1
    assert checked == 0 or found >= 0.75 * checked, (found, checked)
    assert sum(len(a.meta) for a in actions) > 0
    assert all(record["captions"][k] for k in ("semantic", "regular", "detailed"))


@needs_desktop
@pytest.mark.slow
@pytest.mark.parametrize("policy", _policies_under_test())
def test_episode_of_each_policy(policy: str, tmp_path: Path, desktop_tag: str) -> None:
    summary = collect_desktop(policy, 1, 6.0, tmp_path, size=SIZE, seed=3, progress=False)
    assert summary.collected and not summary.failed, summary
    (record,) = load_manifest(tmp_path)
    assert record["kind"] == "desktop" and record["policy"] == policy and record["grid"] is None
    assert record["frames"] >= 0.5 * 6 * 15 and record["dropped_frames"] <= record["frames"] // 10
    _check_episode(tmp_path, record)
    _assert_no_orphans(desktop_tag)


_SEEN: dict[float, int] = {}  # episode (its rng's first draw, the same in every attempt) -> attempts


class _CrashingPolicy:
    """Kills Xvfb: episode 0 early in its first attempt (discarded, retried), episode 1 early in every
    attempt (skipped), episode 2 late (cut). Attempts that fail to start never reach the policy."""

    name = "test-crash"

    def run(self, actor, desktop, rng, seconds):
        key = float(rng.random())
        episode = list(dict.fromkeys([*_SEEN, key])).index(key)
        _SEEN[key] = _SEEN.get(key, 0) + 1
        kill_at = {0: 0.5 if _SEEN[key] == 1 else None, 1: 0.5, 2: 2.6}[episode]
        start = time.monotonic()
        while True:
            if kill_at is not None and time.monotonic() - start > kill_at:
                os.kill(desktop.pids["xvfb"], signal.SIGKILL)
                kill_at = None
            actor.move(*(rng.integers(0, (SIZE[0], SIZE[1]))), duration=0.15)
            actor.click(*actor.position)


@needs_desktop
@pytest.mark.slow
def test_xvfb_killed_mid_episode_retried_cut_or_skipped(tmp_path: Path, desktop_tag: str) -> None:
    _SEEN.clear()
    register("test-crash", _CrashingPolicy)
    try:
        summary = collect_desktop("test-crash", 3, 3.0, tmp_path, size=(320, 240), seed=0, progress=False)
    finally:
        POLICIES.pop("test-crash", None)
    ids = [f"desktop-test-crash-s0-{i:05d}" for i in range(3)]
    assert summary.collected == [ids[0], ids[2]]
    assert list(summary.failed) == [ids[1]] and len(summary.failed[ids[1]]) == 3
    assert "attempt 1" in summary.retried[ids[0]][0] and "cut" in summary.retried[ids[2]][-1]
    records = {r["id"]: r for r in load_manifest(tmp_path)}
    assert set(records) == {ids[0], ids[2]}
    assert records[ids[0]]["attempts"] >= 2 and not records[ids[0]]["cut"]
    assert records[ids[2]]["cut"] and 0.5 * 45 <= records[ids[2]]["frames"] < 45
    _check_episode(tmp_path, records[ids[2]])
    report = json.loads(Path(summary.report).read_text())
    assert ids[1] in report["skipped"] and len(report["skipped"][ids[1]]) == 3
    assert not list(tmp_path.glob("clips/*.tmp")) and not (tmp_path / "clips" / f"{ids[1]}.npz").exists()
    _assert_no_orphans(desktop_tag)


@needs_desktop
@pytest.mark.slow
@pytest.mark.parametrize(("sig", "workers"), [(signal.SIGINT, 2), (signal.SIGTERM, 1), (signal.SIGKILL, 2),
                                              (signal.SIGKILL, 1)])
def test_no_orphans_after_signal(sig: int, workers: int, tmp_path: Path) -> None:
    """Ctrl-C or SIGTERM: the job is gone within 5 s with its desktops, displays and temp folders.
    SIGKILL: its workers and desktops within 10 s, and the next run reclaims the folders it left."""
    job = "collect-desktop" if workers == 2 else "collect-desktop-1"
    trial = run_trial(job, sig, 3.0, tmp_path, after_desktops=workers)  # 3 s after the desktops appear
    assert not trial.error, trial
    assert trial.desktops >= 1, trial  # (a desktop whose start failed may be between attempts)
    assert trial.exited and trial.exit_s <= (10.0 if sig == signal.SIGKILL else 5.0), trial
    assert not trial.processes, f"left running: {trial.processes}"
    assert not trial.folders, f"left in TMPDIR: {trial.folders}"
    assert not trial.displays, f"X sockets with no server: {trial.displays}"
    assert not list(tmp_path.glob("out/clips/*.tmp"))
