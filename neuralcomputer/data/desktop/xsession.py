"""A real XFCE4 desktop under Xvfb, started and torn down per episode (its ``Actor`` is in ``actor.py``).

``Desktop`` starts everything itself: Xvfb on a free display (``-displayfd``, so parallel workers
never race for a number), a private dbus session bus, and a real ``xfce4-session`` (xfwm4, panel,
xfdesktop, xfsettingsd, Thunar daemon, the accessibility bus) with a clean throwaway profile:
a fresh HOME / XDG_* per episode whose xfconf channels pin one top panel without the log-out
buttons, one workspace, and no screensaver, power manager or first-run dialogs. Every process runs
in its own process group and carries a per-desktop marker in its environment; teardown (normal exit,
exception, SIGINT, SIGTERM) kills the groups, then anything still carrying the marker (dbus-activated
helpers such as xfconfd escape the process groups), then reaps.

Coordinates are pixels of the screen, x right, y down; frames ``(H, W, 3)`` uint8 RGB.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from neuralcomputer.data.jobs import claim_dir, reclaim_dead, release_dir, set_parent_death_signal, shielded
from neuralcomputer.errors import NCError

MARKER_ENV = "NC_DESKTOP_SESSION"  # every process of a desktop carries this; teardown kills by it
START_TIMEOUT_S = 90.0  # ~12 s alone on 2 cores; several workers starting at once share the CPUs


class DesktopError(NCError):
    """The desktop could not start, or died: Xvfb, dbus or the XFCE session is gone."""


@dataclass(frozen=True)
class Window:
    """A top-level window as the X server reports it; geometry in root (screen) pixels.

    ``type`` is the EWMH window type in lower case (``normal``, ``dialog``, ``dock``, ``desktop``,
    ``utility``, ...) or ``popup`` for an override-redirect window such as an open menu.
    """

    id: int
    title: str
    wm_class: str
    x: int
    y: int
    width: int
    height: int
    visible: bool
    active: bool
    type: str = "normal"

    @property
    def center(self) -> tuple[int, int]:
        return self.x + self.width // 2, self.y + self.height // 2

    def contains(self, x: int, y: int) -> bool:
        return self.x <= x < self.x + self.width and self.y <= y < self.y + self.height


# --------------------------------------------------------------------------------------------------
# Clean profile

def _channel(name: str, body: str) -> str:
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<channel name="{name}" version="1.0">\n{body}</channel>\n'


# One top panel: applications menu, window buttons, clock. No "actions" plugin (log out / shut down
# buttons), no autohiding dock that pops up under a random pointer.
_PANEL = _channel("xfce4-panel", """\
  <property name="configver" type="int" value="2"/>
  <property name="panels" type="array">
    <value type="int" value="1"/>
    <property name="panel-1" type="empty">
      <property name="position" type="string" value="p=6;x=0;y=0"/>
      <property name="length" type="uint" value="100"/>
      <property name="position-locked" type="bool" value="true"/>
      <property name="icon-size" type="uint" value="16"/>
      <property name="size" type="uint" value="28"/>
      <property name="plugin-ids" type="array">
        <value type="int" value="1"/>
        <value type="int" value="2"/>
        <value type="int" value="3"/>
        <value type="int" value="4"/>
      </property>
    </property>
  </property>
  <property name="plugins" type="empty">
    <property name="plugin-1" type="string" value="applicationsmenu">
      <property name="button-title" type="string" value="Applications"/>
      <property name="show-button-title" type="bool" value="true"/>
    </property>
    <property name="plugin-2" type="string" value="tasklist">
      <property name="grouping" type="uint" value="0"/>
    </property>
    <property name="plugin-3" type="string" value="separator">
      <property name="expand" type="bool" value="true"/>
      <property name="style" type="uint" value="0"/>
    </property>
    <property name="plugin-4" type="string" value="clock"/>
  </property>
""")
# One workspace and no wheel-on-desktop workspace switching: random scrolling would hide windows.
_XFWM4 = _channel("xfwm4", """\
  <property name="general" type="empty">
    <property name="workspace_count" type="int" value="1"/>
    <property name="scroll_workspaces" type="bool" value="false"/>
    <property name="wrap_workspaces" type="bool" value="false"/>
    <property name="use_compositing" type="bool" value="false"/>
  </property>
""")
_SESSION = _channel("xfce4-session", """\
  <property name="general" type="empty">
    <property name="SaveOnExit" type="bool" value="false"/>
    <property name="AutoSave" type="bool" value="false"/>
    <property name="PromptOnLogout" type="bool" value="true"/>
    <property name="LockCommand" type="string" value="true"/>
  </property>
  <property name="shutdown" type="empty">
    <property name="LockScreen" type="bool" value="false"/>
  </property>
  <property name="startup" type="empty">
    <property name="ssh-agent" type="empty"><property name="enabled" type="bool" value="false"/></property>
    <property name="gpg-agent" type="empty"><property name="enabled" type="bool" value="false"/></property>
  </property>
""")
# Desktop icons: Home and Trash only; no "File System" icon one random double click from /. A plain
# backdrop instead of XFCE's patterned wallpaper: a tiny model's tokenizer spends its capacity on a
# high-frequency wallpaper (measured: an 8x8-cell autoencoder blurred it and lost the cursor), while
# the windows, menus and cursor are what a world model of the desktop must get right.
_DESKTOP = _channel("xfce4-desktop", """\
  <property name="backdrop" type="empty">
    <property name="screen0" type="empty">
      <property name="monitorscreen" type="empty">
        <property name="workspace0" type="empty">
          <property name="color-style" type="int" value="0"/>
          <property name="image-style" type="int" value="0"/>
          <property name="rgba1" type="array">
            <value type="double" value="0.23"/><value type="double" value="0.33"/>
            <value type="double" value="0.45"/><value type="double" value="1"/>
          </property>
        </property>
      </property>
    </property>
  </property>
  <property name="desktop-icons" type="empty">
    <property name="file-icons" type="empty">
      <property name="show-filesystem" type="bool" value="false"/>
      <property name="show-removable" type="bool" value="false"/>
    </property>
  </property>
""")
_SCREENSAVER = _channel("xfce4-screensaver", """\
  <property name="saver" type="empty"><property name="enabled" type="bool" value="false"/></property>
  <property name="lock" type="empty"><property name="enabled" type="bool" value="false"/></property>
""")
_POWER = _channel("xfce4-power-manager", """\
  <property name="xfce4-power-manager" type="empty">
    <property name="dpms-enabled" type="bool" value="false"/>
    <property name="blank-on-ac" type="int" value="0"/>
  </property>
""")
_HIDDEN_AUTOSTART = ("xscreensaver", "xfce4-screensaver", "light-locker", "xfce4-power-manager", "blueman",
                     "nm-applet", "pulseaudio", "xfce4-notifyd", "print-applet", "update-notifier",
                     "polkit-gnome-authentication-agent-1", "xfce-polkit", "geoclue-demo-agent")
# Programs that would end the session or lock the screen: no-ops inside collection sessions, so a
# random click on "Log Out" in a menu cannot end an episode.
_SHIMS = ("xfce4-session-logout", "xflock4", "xscreensaver-command", "light-locker-command")


def write_profile(home: Path) -> dict[str, str]:
    """Create a clean XFCE profile under ``home``; returns the XDG variables pointing into it."""
    config, cache, data = home / ".config", home / ".cache", home / ".local" / "share"
    runtime, bin_dir = home / ".runtime", home / ".bin"
    for d in (config, cache, data, bin_dir):
        d.mkdir(parents=True, exist_ok=True)
    runtime.mkdir(mode=0o700, exist_ok=True)
    channels = config / "xfce4" / "xfconf" / "xfce-perchannel-xml"
    channels.mkdir(parents=True, exist_ok=True)
    for name, text in (("xfce4-panel", _PANEL), ("xfwm4", _XFWM4), ("xfce4-session", _SESSION),
                       ("xfce4-desktop", _DESKTOP), ("xfce4-screensaver", _SCREENSAVER), ("xfce4-power-manager", _POWER)):
        (channels / f"{name}.xml").write_text(text)
    autostart = config / "autostart"
    autostart.mkdir(exist_ok=True)
    for name in _HIDDEN_AUTOSTART:
        (autostart / f"{name}.desktop").write_text(f"[Desktop Entry]\nType=Application\nName={name}\nHidden=true\n")
    apps = data / "applications"
    apps.mkdir(parents=True, exist_ok=True)
    (apps / "xfce4-session-logout.desktop").write_text(
        "[Desktop Entry]\nType=Application\nName=Log Out\nExec=true\nNoDisplay=true\nHidden=true\n")
    for name in _SHIMS:
        shim = bin_dir / name
        shim.write_text("#!/bin/sh\n# disabled in desktop collection sessions\nexit 0\n")
        shim.chmod(0o755)
    # The XDG user folders, made up front: otherwise xdg-user-dirs-update and xfdesktop race to
    # create ~/Desktop and xfdesktop now and then shows a "Could not create the desktop folder" dialog.
    user_dirs = ("Desktop", "Documents", "Downloads", "Music", "Pictures", "Public", "Templates", "Videos")
    for name in user_dirs:
        (home / name).mkdir(exist_ok=True)
    (config / "user-dirs.dirs").write_text("".join(f'XDG_{n.upper()}_DIR="$HOME/{n}"\n' for n in user_dirs)
                                           .replace("XDG_PUBLIC_DIR", "XDG_PUBLICSHARE_DIR"))
    (config / "user-dirs.locale").write_text("C\n")
    # Mark the xfce4-panel first-run migration as done (its "default or empty panel?" dialog).
    (config / "xfce4" / "panel").mkdir(parents=True, exist_ok=True)
    return {"HOME": str(home), "XDG_CONFIG_HOME": str(config), "XDG_CACHE_HOME": str(cache),
            "XDG_DATA_HOME": str(data), "XDG_RUNTIME_DIR": str(runtime), "NC_SHIM_DIR": str(bin_dir)}


# --------------------------------------------------------------------------------------------------
# Processes

def _die_with_parent(parent: int) -> Callable[[], None]:
    """preexec: SIGTERM this child when the process that started it dies (even by SIGKILL); a parent
    that died before the call (the signal would never come) ends the child at once."""
    def preexec() -> None:
        set_parent_death_signal(signal.SIGTERM)
        if os.getppid() != parent:
            os._exit(1)

    return preexec


def _spawn(argv: Sequence[str], env: dict[str, str], *, pdeathsig: bool = False, **kwargs: Any) -> subprocess.Popen:
    kwargs.setdefault("stdin", subprocess.DEVNULL)
    kwargs.setdefault("stdout", subprocess.DEVNULL)
    kwargs.setdefault("stderr", subprocess.DEVNULL)
    try:
        return subprocess.Popen(list(argv), env=env, start_new_session=True,
                                preexec_fn=_die_with_parent(os.getpid()) if pdeathsig else None, **kwargs)
    except OSError as exc:
        raise DesktopError(f"cannot start {argv[0]}: {exc} (run `make setup` to install the desktop packages)") from None


def marked_processes(token: str | None = None, prefix: str = "") -> list:
    """Processes whose environment carries the desktop marker (``token``: one desktop, None: any whose
    marker starts with ``prefix``)."""
    import psutil

    found = []
    for proc in psutil.process_iter(["pid"]):
        if proc.pid == os.getpid():
            continue
        try:
            value = proc.environ().get(MARKER_ENV)
        except (psutil.Error, OSError):
            continue
        if value is not None and (value == token if token is not None else value.startswith(prefix)):
            found.append(proc)
    return found


def _kill_group(proc: subprocess.Popen, sig: int, token: str) -> None:
    """Signal the process group ``proc`` leads (each program starts its own session).

    Once the leader is reaped its pid, and so the group id, is free: with pid_max 32768 and busy
    workers a new process (another desktop's session!) can get it. Then only the group's members that
    carry this desktop's marker ``token`` are signalled, never a stranger that inherited the number.
    """
    if proc.returncode is None:  # not reaped yet: the id is still ours
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        return
    for member in marked_processes(token):
        with contextlib.suppress(ProcessLookupError, PermissionError, OSError):
            if os.getpgid(member.pid) == proc.pid:
                os.kill(member.pid, sig)


def _read_display_number(fd: int, timeout: float) -> str:
    """The display number Xvfb writes to its ``-displayfd`` once it accepts connections ("" if none).

    Read up to the newline, never just the first chunk: Xvfb writes the number and the newline in two
    write()s and treats a failed second write as fatal ("Cannot write display number to fd N", exit
    status 1). A reader that took the number and closed the pipe before the newline came killed its
    own X server now and then: the desktop start-ups that died under load.
    """
    data = b""
    deadline = time.monotonic() + timeout
    while b"\n" not in data:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        chunk = os.read(fd, 64) if ready else b""
        if not chunk:  # timed out, or Xvfb exited (EOF)
            return ""
        data += chunk
    return data.decode(errors="replace").strip()


# --------------------------------------------------------------------------------------------------
# The desktop

START_ATTEMPTS = 5  # fresh desktops tried before a start-up failure is an error
TERM_GRACE_S = 1.5  # after SIGTERM, the desktop's processes get this long (all together) before SIGKILL


def _looks_like_profile(path: Path) -> bool:
    """A desktop's throwaway folder (for folders made before owner files: see jobs.reclaim_dead)."""
    return (path / "home" / ".config" / "xfce4").is_dir()


class Desktop:
    """A private Xvfb + dbus + XFCE4 session; use as a context manager.

    ``Desktop(width, height, workdir)``: ``workdir`` holds the throwaway profile (a temporary folder,
    removed on exit, when None). Attributes: ``display`` (``":N"``), ``env`` (environment for programs
    launched inside the session), ``width``, ``height``, ``start_seconds`` (time to a ready desktop).
    """

    def __init__(self, width: int = 1024, height: int = 768, workdir: str | Path | None = None,
                 start_timeout: float = START_TIMEOUT_S) -> None:
        if not (64 <= width <= 8192 and 64 <= height <= 8192):
            raise NCError(f"desktop size must be within 64..8192 px, got {width}x{height}")
        self.width, self.height = int(width), int(height)
        self.display = ""
        self.env: dict[str, str] = {}
        self.start_seconds = float("nan")
        # NC_DESKTOP_TAG prefixes the marker so a test (or a job) can find exactly its own desktops.
        self.token = os.environ.get("NC_DESKTOP_TAG", "") + uuid.uuid4().hex
        self._workdir_arg = Path(workdir) if workdir is not None else None
        self._workdir: Path | None = None
        self._start_timeout = start_timeout
        self._xvfb: subprocess.Popen | None = None
        self._dbus: subprocess.Popen | None = None
        self._session: subprocess.Popen | None = None
        self._launched: list[subprocess.Popen] = []
        self._x = None  # python-xlib connection of the thread that calls windows()/pointer()
        self._x_lock = threading.Lock()
        self._mss = threading.local()
        self._old_sigterm: Any = None
        self._owner_fd = -1  # the workdir's owner lock (jobs.claim_dir): a killed run's is reclaimed
        self._closed = False

    # -- lifecycle ---------------------------------------------------------------------------------

    def __enter__(self) -> Desktop:
        for attempt in range(START_ATTEMPTS):
            self._install_sigterm()
            try:
                self.start()
                return self
            except DesktopError as exc:
                # A start can still fail on a busy machine (the start timeout, a program of the session
                # exiting early): begin again with a fresh desktop.
                if attempt == START_ATTEMPTS - 1:
                    self.close()
                    raise
                # said, not hidden: the reason (with Xvfb's and the session's own last words) is the clue
                print(f"desktop start {attempt + 1} of {START_ATTEMPTS} failed, starting afresh: {exc}",
                      file=sys.stderr, flush=True)
                self._teardown_held()
                self._reset()
                # a machine busy enough to kill a start gets time to settle: 2, 4, 8, 16 s (seen: a
                # window of several seconds in which every start died, then none)
                time.sleep(2.0 ** (attempt + 1))
            except BaseException:
                self.close()
                raise
        raise AssertionError("unreachable")

    def _reset(self) -> None:
        """Forget a torn-down start so that :meth:`start` can run again."""
        self._xvfb = self._dbus = self._session = None
        self._launched, self._workdir, self._x, self._owner_fd = [], None, None, -1
        self._closed = False
        self._mss = threading.local()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _install_sigterm(self) -> None:
        # SIGTERM would end the process without running __exit__ (no teardown): make it an exception.
        if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            def _terminate(signum: int, frame: object) -> None:
                raise SystemExit(128 + signum)

            self._old_sigterm = signal.signal(signal.SIGTERM, _terminate)

    def start(self) -> None:
        """Start Xvfb, dbus and XFCE, and wait until the window manager, panel and desktop are up."""
        t0 = time.monotonic()
        # Profiles of desktops whose process was killed (SIGKILL leaves no chance to remove them)
        if self._workdir_arg is not None:
            self._workdir_arg.mkdir(parents=True, exist_ok=True)
            reclaim_dead(self._workdir_arg, "desktop-")
            self._workdir = Path(tempfile.mkdtemp(prefix="desktop-", dir=self._workdir_arg))
        else:
            reclaim_dead(tempfile.gettempdir(), "nc-desktop-", looks_ours=_looks_like_profile)
            self._workdir = Path(tempfile.mkdtemp(prefix="nc-desktop-"))
        self._owner_fd = claim_dir(self._workdir)
        home = self._workdir / "home"
        xdg = write_profile(home)
        # Programs' own temp files (xfce4-session's .xfsm-ICE-* auth files, GTK's) stay in the profile,
        # so they go with it, also after a kill, instead of piling up in /tmp.
        (self._workdir / "tmp").mkdir(mode=0o700)
        xdg["TMPDIR"] = str(self._workdir / "tmp")
        base = {
            "PATH": f"{xdg.pop('NC_SHIM_DIR')}:{os.environ.get('PATH', '/usr/local/bin:/usr/bin:/bin')}",
            "USER": os.environ.get("USER", "root"), "LOGNAME": os.environ.get("LOGNAME", "root"),
            "SHELL": "/bin/bash", "LANG": "C.UTF-8", "TERM": "xterm-256color",
            "XDG_CONFIG_DIRS": "/etc/xdg", "XDG_DATA_DIRS": "/usr/local/share:/usr/share",
            "XDG_SESSION_TYPE": "x11", "XDG_CURRENT_DESKTOP": "XFCE", "DESKTOP_SESSION": "xfce",
            "XDG_SESSION_DESKTOP": "xfce", "GTK_MODULES": "gail:atk-bridge", "NO_AT_BRIDGE": "0",
            MARKER_ENV: self.token, **xdg,
        }
        # Xvfb's and the session's stderr: quoted when a start fails (its own message is the clue: it
        # named the display-number race, see _read_display_number)
        self._log = self._workdir / "session.log"
        self._start_xvfb(base)
        base["DISPLAY"] = self.display
        self._start_dbus(base)
        self.env = base
        self._start_session()
        self._wait_ready(t0)
        self.start_seconds = time.monotonic() - t0

    def _start_xvfb(self, env: dict[str, str]) -> None:
        read_fd, write_fd = os.pipe()
        try:
            with open(self._log, "ab") as log:
                self._xvfb = _spawn(
                    ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", f"{self.width}x{self.height}x24",
                     "-nolisten", "tcp", "-noreset", "-s", "0", "-dpms", "+extension", "XTEST"],
                    env, pdeathsig=True, pass_fds=(write_fd,), stderr=log)
            os.close(write_fd)
            write_fd = -1
            number = _read_display_number(read_fd, 30.0)
        finally:
            os.close(read_fd)
            if write_fd >= 0:
                os.close(write_fd)
        if not number.isdigit():
            raise DesktopError(f"Xvfb did not start (exit status {self._xvfb.poll()}; {self.log_tail()})")
        self.display = f":{number}"

    def _start_dbus(self, env: dict[str, str]) -> None:
        self._dbus = _spawn(["dbus-daemon", "--session", "--nofork", "--nopidfile", "--print-address=1"],
                            env, pdeathsig=True, stdout=subprocess.PIPE)
        assert self._dbus.stdout is not None
        ready, _, _ = select.select([self._dbus.stdout], [], [], 15.0)
        address = self._dbus.stdout.readline().decode().strip() if ready else ""
        if not address:
            raise DesktopError(f"dbus-daemon did not start (exit status {self._dbus.poll()})")
        env["DBUS_SESSION_BUS_ADDRESS"] = address

    def _start_session(self) -> None:
        with open(self._log, "ab") as log:
            self._session = _spawn(["xfce4-session"], self.env, pdeathsig=True, cwd=self.env["HOME"], stderr=log)

    def _wait_ready(self, t0: float) -> None:
        deadline = t0 + self._start_timeout
        restarts = 1  # xfce4-session now and then exits silently at start-up on a busy machine: once more
        while True:
            if not self.alive() and restarts and self._xvfb.poll() is None and self._dbus.poll() is None:
                restarts -= 1
                self._session.wait()
                _kill_group(self._session, signal.SIGKILL, self.token)
                self._start_session()
            if not self.alive():
                status = {name: proc.poll() for name, proc in
                          (("xvfb", self._xvfb), ("dbus", self._dbus), ("session", self._session))}
                # a negative status is the signal that ended it: the clue to what kills a start
                raise DesktopError(f"the XFCE session exited while starting (exit statuses {status}; "
                                   f"{self.log_tail()})")
            types = {w.type for w in self._try_windows()}
            if "dock" in types and "desktop" in types and self._try_wm_running():
                break
            if time.monotonic() > deadline:
                raise DesktopError(f"XFCE did not come up within {self._start_timeout:.0f} s (windows: {sorted(types)})")
            time.sleep(0.25)
        # The panel maps before its plugins have drawn: wait for two identical screenshots in a row.
        last, stable_since = None, time.monotonic()
        stable_end = min(deadline, time.monotonic() + 10.0)  # a clock or caret may never hold still
        while time.monotonic() < stable_end:
            shot = self.screenshot()
            if last is not None and np.array_equal(shot, last):
                if time.monotonic() - stable_since > 0.6:
                    break
            else:
                stable_since = time.monotonic()
            last = shot
            time.sleep(0.15)

    def _try_wm_running(self) -> bool:
        # An X server that died after the alive() check above refuses the connection: not an error
        # here (it escaped the start's retries), the next round of the loop reports the dead desktop.
        try:
            return self._wm_running()
        except Exception:
            return False

    def _try_windows(self) -> list[Window]:
        try:
            return self.windows()
        except Exception:
            return []

    def log_tail(self, lines: int = 3) -> str:
        """The last lines of the session's stderr (for error messages)."""
        try:
            text = self._log.read_text(errors="replace")
        except (OSError, AttributeError):
            return "no session log"
        kept = [" ".join(line.split()) for line in text.splitlines() if line.strip()]
        return " | ".join(kept[-lines:]) or "empty session log"

    def alive(self) -> bool:
        """Xvfb, the session bus and the XFCE session are all still running."""
        return all(p is not None and p.poll() is None for p in (self._xvfb, self._dbus, self._session))

    @property
    def pids(self) -> dict[str, int]:
        """Process ids of the core processes (``xvfb``, ``dbus``, ``session``), e.g. for fault tests."""
        return {name: p.pid for name, p in (("xvfb", self._xvfb), ("dbus", self._dbus), ("session", self._session))
                if p is not None}

    def close(self) -> None:
        """Kill every process of this desktop (idempotent) and remove the profile."""
        if not self._closed:  # set only once the teardown went through (an interrupted one runs again)
            self._teardown_held()

    def _teardown_held(self) -> None:
        """Tear down to the end whatever signals arrive meanwhile; a KeyboardInterrupt or SystemExit
        that came during it is raised after.

        A second Ctrl-C, or the SIGTERM a job sends its workers right after their own Ctrl-C, must not
        cut the teardown short and leave a desktop running. Inside a job the signal waits
        (jobs.shielded); under Python's own handlers it raises, and the teardown begins again (every
        step of it may be repeated).
        """
        pending: BaseException | None = None
        with shielded():
            for _ in range(3):
                try:
                    self._teardown()
                    self._closed = True
                    break
                except (KeyboardInterrupt, SystemExit) as exc:
                    pending = exc
        if pending is not None:
            raise pending

    def _teardown(self) -> None:
        import psutil

        with contextlib.suppress(Exception):
            if self._x is not None:
                self._x.close()
        for sct in getattr(self._mss, "all", []):
            with contextlib.suppress(Exception):
                sct.close()
        procs = [p for p in (*self._launched, self._session, self._dbus, self._xvfb) if p is not None]
        for p in procs:
            _kill_group(p, signal.SIGTERM, self.token)
        stragglers = marked_processes(self.token)
        for proc in stragglers:
            with contextlib.suppress(psutil.Error):
                proc.terminate()
        # One short grace period for all (an interrupted job must be gone within 5 s): SIGTERM lets
        # Xvfb remove its socket; nothing else of a throwaway desktop has anything to save.
        deadline = time.monotonic() + TERM_GRACE_S
        for p in procs:
            try:
                p.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _kill_group(p, signal.SIGKILL, self.token)
        _, alive = psutil.wait_procs(stragglers, timeout=max(0.0, deadline - time.monotonic()))
        for proc in alive + marked_processes(self.token):
            with contextlib.suppress(psutil.Error):
                proc.kill()
        for p in procs:
            _kill_group(p, signal.SIGKILL, self.token)  # anything left in the groups
            with contextlib.suppress(Exception):
                p.wait(timeout=5.0)
            if p.stdout is not None:
                p.stdout.close()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
        if self._owner_fd >= 0:
            release_dir(self._owner_fd)
            self._owner_fd = -1
        if self._old_sigterm is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._old_sigterm)
            self._old_sigterm = None

    # -- looking at the screen ---------------------------------------------------------------------

    def _xdisplay(self):
        if self._x is None:
            from Xlib import display as xdisplay

            self._x = xdisplay.Display(self.display)
        return self._x

    def screenshot(self) -> np.ndarray:
        """The framebuffer as ``(H, W, 3)`` uint8 RGB (no cursor: Xvfb never draws one)."""
        sct = getattr(self._mss, "sct", None)
        if sct is None:
            import mss

            sct = self._mss.sct = mss.MSS(display=self.display)
            self._mss.all = [*getattr(self._mss, "all", []), sct]
        shot = sct.grab({"left": 0, "top": 0, "width": self.width, "height": self.height})
        return bgra_to_rgb(shot.bgra, self.height, self.width)

    def pointer(self) -> tuple[int, int]:
        """The pointer position read back from the X server."""
        with self._x_lock:
            reply = self._xdisplay().screen().root.query_pointer()
        return int(reply.root_x), int(reply.root_y)

    def windows(self) -> list[Window]:
        """Top-level windows, bottom to top (EWMH client list), then open popups (menus, tooltips)."""
        with self._x_lock:
            return list_windows(self._xdisplay())

    def active_window(self) -> Window | None:
        """The window that has the focus (``_NET_ACTIVE_WINDOW``), or None."""
        return next((w for w in self.windows() if w.active), None)

    def launch(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen:
        """Start a program inside the session (its env, HOME as cwd, own process group)."""
        kwargs.setdefault("cwd", self.env.get("HOME"))
        proc = _spawn(argv, self.env, **kwargs)
        self._launched.append(proc)
        return proc

    def wait_for_window(self, match: str | Callable[[Window], bool], timeout: float = 15.0) -> Window:
        """Wait for a visible window whose title or WM class contains ``match`` (case-insensitive), or
        that satisfies the predicate; raises DesktopError after ``timeout`` seconds."""
        if isinstance(match, str):
            needle = match.lower()

            def predicate(w: Window) -> bool:
                return w.visible and (needle in w.title.lower() or needle in w.wm_class.lower())
        else:
            predicate = match
        deadline = time.monotonic() + timeout
        while True:
            for w in self.windows():
                if predicate(w):
                    return w
            if not self.alive():
                raise DesktopError("the desktop died while waiting for a window")
            if time.monotonic() > deadline:
                raise DesktopError(f"no window matching {match!r} within {timeout} s")
            time.sleep(0.1)

    def _wm_running(self) -> bool:
        with self._x_lock:
            x = self._xdisplay()
            prop = x.screen().root.get_full_property(x.intern_atom("_NET_SUPPORTING_WM_CHECK"), 0)
        return bool(prop is not None and len(prop.value))


def bgra_to_rgb(bgra: bytes, height: int, width: int) -> np.ndarray:
    """X's 32-bit BGRA bytes to an ``(H, W, 3)`` uint8 RGB array (a copy)."""
    return np.frombuffer(bgra, dtype=np.uint8).reshape(height, width, 4)[..., 2::-1].copy()


def _atom_names(x, values) -> list[str]:
    return [x.get_atom_name(v) for v in values]


def list_windows(x) -> list[Window]:
    """Windows of the X display ``x`` (a python-xlib Display): EWMH clients bottom to top, then popups."""
    from Xlib import X
    from Xlib.error import XError

    root = x.screen().root
    atom = x.intern_atom

    def prop(win, name: str):
        p = win.get_full_property(atom(name), X.AnyPropertyType)
        return None if p is None else p.value

    clients = prop(root, "_NET_CLIENT_LIST_STACKING")
    active = prop(root, "_NET_ACTIVE_WINDOW")
    active_id = int(active[0]) if active is not None and len(active) else 0
    out: list[Window] = []
    for wid in [] if clients is None else [int(v) for v in clients]:
        win = x.create_resource_object("window", wid)
        try:
            attrs = win.get_attributes()
            geom = win.get_geometry()
            origin = root.translate_coords(win, 0, 0)
            title = prop(win, "_NET_WM_NAME")
            if title is None:
                title = prop(win, "WM_NAME")
            title = title.decode("utf-8", "replace") if isinstance(title, bytes) else str(title or "")
            cls = win.get_wm_class()
            types = prop(win, "_NET_WM_WINDOW_TYPE")
            kind = _atom_names(x, types[:1])[0].removeprefix("_NET_WM_WINDOW_TYPE_").lower() if types is not None and len(types) else "normal"
            state = prop(win, "_NET_WM_STATE")
            hidden = state is not None and atom("_NET_WM_STATE_HIDDEN") in list(state)
        except XError:
            continue  # closed while we looked
        out.append(Window(wid, title, cls[1] if cls else "", int(origin.x), int(origin.y), int(geom.width),
                          int(geom.height), attrs.map_state == X.IsViewable and not hidden, wid == active_id, kind))
    try:
        children = root.query_tree().children
    except XError:
        children = []
    for win in children:
        try:
            attrs = win.get_attributes()
            if not attrs.override_redirect or attrs.map_state != X.IsViewable:
                continue
            geom = win.get_geometry()
            if geom.x + geom.width <= 0 or geom.y + geom.height <= 0 or geom.width <= 1 or geom.height <= 1:
                continue  # off-screen helper windows (the WM's, the panel's), not something on screen
            cls = win.get_wm_class()
            name = prop(win, "_NET_WM_NAME") or prop(win, "WM_NAME") or b""
        except XError:
            continue
        title = name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)
        out.append(Window(int(win.id), title, cls[1] if cls else "", int(geom.x), int(geom.y), int(geom.width),
                          int(geom.height), True, False, "popup"))
    return out
