"""What every scripted desktop task works with: the live desktop as a :class:`TaskContext` (windows,
accessibility tree, pixels, waits with deadlines), the task registry (:data:`TASKS`, :func:`task`)
and the errors a task raises. The catalogue of tasks is :mod:`~neuralcomputer.data.desktop.scripted_tasks`;
the policy that picks and runs them is :mod:`~neuralcomputer.data.desktop.scripted`.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np

from neuralcomputer.data.desktop import a11y
from neuralcomputer.errors import NCError

T = TypeVar("T")

# Window classes of the session's applications (WM_CLASS, compared case-insensitively).
TERMINAL, FILES, EDITOR, CALCULATOR = "xfce4-terminal", "thunar", "mousepad", "galculator"
# How each application is opened from the panel's "Applications" menu.
MENU_PATHS: dict[str, tuple[str, ...]] = {
    TERMINAL: ("Terminal Emulator",),
    FILES: ("File Manager",),
    EDITOR: ("Accessories", "Mousepad"),
    CALCULATOR: ("Accessories", "Galculator"),
}
# Never a target, whatever a task computes: these end the session.
FORBIDDEN_NAMES = ("Log Out", "Shut Down", "Restart", "Suspend", "Hibernate", "Switch User")
APP_WINDOW_TYPES = ("normal", "dialog", "utility")  # EWMH types of application windows
MAX_APP_WINDOWS = 4  # beyond this the policy prefers tasks that close windows
# Windows a failed task may leave behind; the policy closes them before the next task.
STRAY_WINDOWS = re.compile(r"^(About|Save As|Open|Create New Folder|New Folder|.*Preferences)")
TASK_SECONDS = 30.0  # each task's own deadline


class TaskFailed(NCError):
    """A task could not find its target or did not see its effect in time."""


class EpisodeOver(Exception):
    """The episode's time ran out in the middle of a task (not a failure of the task)."""


class DesktopLike(Protocol):
    """What the tasks use of :class:`neuralcomputer.data.desktop.xsession.Desktop`."""

    env: dict[str, str]
    width: int
    height: int

    def screenshot(self) -> np.ndarray: ...
    def pointer(self) -> tuple[int, int]: ...
    def windows(self) -> list[Any]: ...
    def active_window(self) -> Any | None: ...


class ActorLike(Protocol):
    """The meta-actions of :class:`neuralcomputer.data.desktop.actor.Actor` the tasks use."""

    def move(self, x: int, y: int, *args: Any, **kwargs: Any) -> Any: ...
    def click(self, x: int, y: int, button: int = 1, count: int = 1) -> Any: ...
    def drag(self, x0: int, y0: int, x: int, y: int, *args: Any, **kwargs: Any) -> Any: ...
    def scroll(self, x: int, y: int, dx: int, dy: int) -> Any: ...
    def type(self, text: str, *args: Any, **kwargs: Any) -> Any: ...
    def key(self, keys: list[str]) -> Any: ...
    def wait(self, seconds: float) -> Any: ...


@dataclass
class TaskRecord:
    """One attempt at a task: what, whether it worked, when (``time.monotonic``), and why not."""

    name: str
    ok: bool
    start: float
    end: float
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Frame:
    """A window's frame (decorations included) and the height of its title bar, screen pixels."""

    x0: int
    y0: int
    x1: int
    y1: int
    top: int  # title bar height: the client area starts at y0 + top

    @property
    def title_y(self) -> int:
        return self.y0 + self.top // 2


# ---------------------------------------------------------------------------------------------
# The context a task runs in: finding things, waiting with deadlines, moving like a person.
# ---------------------------------------------------------------------------------------------


class TaskContext:
    """Everything a task needs: the actor and desktop, the rng, the deadlines, the episode's HOME."""

    def __init__(self, actor: ActorLike, desktop: DesktopLike, rng: np.random.Generator, episode_end: float,
                 task_seconds: float = TASK_SECONDS) -> None:
        self.actor = actor
        self.desktop = desktop
        self.rng = rng
        self.episode_end = episode_end
        self.deadline = min(episode_end, time.monotonic() + task_seconds)
        self.home = Path(desktop.env.get("HOME", str(Path.home())))
        self.screen = (int(desktop.width), int(desktop.height))

    # -- time --------------------------------------------------------------------------------

    def check_time(self) -> None:
        """Stop the task when the episode or the task is out of time."""
        now = time.monotonic()
        if now >= self.episode_end:
            raise EpisodeOver
        if now >= self.deadline:
            raise TaskFailed("task deadline passed")

    def wait_until(self, probe: Callable[[], T | None], what: str, timeout: float = 8.0, poll: float = 0.25) -> T:
        """Poll ``probe`` until it returns something truthy; :class:`TaskFailed` naming ``what`` after
        ``timeout`` seconds (or at the task's deadline)."""
        end = min(time.monotonic() + timeout, self.deadline)
        while True:
            self.check_time()
            value = probe()
            if value:
                return value
            if time.monotonic() + poll > end:
                if time.monotonic() >= self.episode_end:
                    raise EpisodeOver
                raise TaskFailed(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(poll)

    def pause(self, low: float = 0.2, high: float = 0.8) -> None:
        """A person's short pause between actions."""
        self.check_time()
        self.actor.wait(float(self.rng.uniform(low, high)))

    # -- windows -------------------------------------------------------------------------------

    def app_windows(self, wm_class: str | None = None) -> list[Any]:
        """Mapped application windows (not the desktop or the panels), optionally of one class."""
        out = []
        for w in self.desktop.windows():
            cls = str(getattr(w, "wm_class", "")).lower()
            if getattr(w, "type", "normal") not in APP_WINDOW_TYPES or not getattr(w, "visible", True):
                continue
            if "xfdesktop" in cls or "xfce4-panel" in cls:
                continue
            if w.width <= 1 or w.height <= 1:
                continue
            if wm_class is None or wm_class.lower() in cls:
                out.append(w)
        return out

    def window(self, wm_class: str, title: str | None = None) -> Any | None:
        """The first mapped window of a class (and title substring), or ``None``."""
        for w in self.app_windows(wm_class):
            if title is None or title.lower() in w.title.lower():
                return w
        return None

    def active(self) -> Any | None:
        """The window with input focus, if any."""
        return self.desktop.active_window()

    def wait_window(self, wm_class: str, title: str | None = None, timeout: float = 10.0,
                    exclude: Iterable[int] = ()) -> Any:
        """Wait for a mapped window of a class (title substring), not one of ``exclude`` ids."""
        skip = set(exclude)

        def probe() -> Any | None:
            for w in self.app_windows(wm_class):
                if w.id not in skip and (title is None or title.lower() in w.title.lower()):
                    return w
            return None

        return self.wait_until(probe, f"a {wm_class} window" + (f" titled {title!r}" if title else ""), timeout)

    def refresh(self, win: Any) -> Any | None:
        """The current state of a window (by id), ``None`` once it is gone or unmapped."""
        for w in self.desktop.windows():
            if w.id == win.id and getattr(w, "visible", True):
                return w
        return None

    def frame(self, win: Any) -> Frame:
        """The window's frame from the client box and the WM's ``_NET_FRAME_EXTENTS``."""
        left, right, top, bottom = frame_extents(self.desktop, win.id)
        return Frame(win.x - left, win.y - top, win.x + win.width + right, win.y + win.height + bottom, top)

    def title_point(self, win: Any) -> tuple[int, int]:
        """A point on the title bar, left of centre (clear of the buttons on the right)."""
        f = self.frame(win)
        width = f.x1 - f.x0
        x = f.x0 + int(width * self.rng.uniform(0.2, 0.45))
        return min(max(x, 1), self.screen[0] - 2), min(max(f.title_y, 1), self.screen[1] - 2)

    def title_buttons(self, win: Any) -> list[int]:
        """x centres of the title bar's buttons, rightmost first (close, maximise, minimise, ...).

        xfwm4 draws them, so they are found in the title bar's pixels: runs of columns at the right
        end whose colour differs from the bar's background.
        """
        f = self.frame(win)
        shot = self.desktop.screenshot()
        y0, y1 = max(f.title_y - 5, 0), min(f.title_y + 6, shot.shape[0])
        x0, x1 = max(f.x0, 0), min(f.x1, shot.shape[1])
        band = shot[y0:y1, x0:x1].astype(np.int16)  # (h, w, 3)
        background = np.median(band.reshape(-1, 3), axis=0)
        ink = (np.abs(band - background).sum(axis=2) > 90).any(axis=0)  # (w,)
        runs: list[tuple[int, int]] = []
        start = None
        for i, on in enumerate(ink):
            if on and start is None:
                start = i
            elif not on and start is not None:
                runs.append((start, i))
                start = None
        if start is not None:
            runs.append((start, len(ink)))
        # merge runs closer than 3 px (parts of one glyph), keep glyph-sized ones on the right half
        merged: list[list[int]] = []
        for a, b in runs:
            if merged and a - merged[-1][1] < 3:
                merged[-1][1] = b
            else:
                merged.append([a, b])
        half = (x1 - x0) // 2
        glyphs = [(a + b) // 2 + x0 for a, b in merged if a > half and 3 <= b - a <= 20]
        if len(glyphs) < 3:
            raise TaskFailed(f"could not find the title bar buttons of {win.title!r}")
        return glyphs[::-1]

    def uncovered_title_point(self, win: Any) -> tuple[int, int] | None:
        """A point of the title bar that no window above it covers (``windows()`` is bottom to top)."""
        stack = self.desktop.windows()
        ids = [w.id for w in stack]
        if win.id not in ids:
            return None
        above = []
        for w in stack[ids.index(win.id) + 1:]:
            if getattr(w, "visible", True) and getattr(w, "type", "normal") != "desktop":
                try:
                    f = self.frame(w) if getattr(w, "type", "normal") in APP_WINDOW_TYPES else None
                except TaskFailed:
                    f = None
                above.append((f.x0, f.y0, f.x1, f.y1) if f else (w.x, w.y, w.x + w.width, w.y + w.height))
        f = self.frame(win)
        y = f.title_y
        xs = [x for x in range(f.x0 + 30, f.x0 + int((f.x1 - f.x0) * 0.7), 6)
              if 0 <= x < self.screen[0] and not any(a <= x < c and b <= y < d for a, b, c, d in above)]
        if not xs or not 0 <= y < self.screen[1]:
            return None
        return xs[int(self.rng.integers(len(xs)))], y

    def focus(self, win: Any) -> Any:
        """Give a window focus as a person would: a visible part of its title bar, else its task button."""
        if getattr(self.active(), "id", None) != win.id:
            current = self.refresh(win)
            point = self.uncovered_title_point(current) if current is not None else None
            if point is not None:
                self.actor.click(*point)
            else:
                self.click_widget(self.find("toggle button", name=win.title, app="xfce4-panel"))
        try:
            self.wait_until(lambda: getattr(self.active(), "id", None) == win.id, f"{win.title!r} to take focus", 2.5)
        except TaskFailed:
            # covered or mis-hit: its button in the panel's task list (several windows may share a title)
            for button in a11y.find_all(self.desktop, "toggle button", win.title, app="xfce4-panel"):
                self.click_widget(button)
                self.pause(0.4, 0.7)
                if getattr(self.active(), "id", None) == win.id:
                    break
            self.wait_until(lambda: getattr(self.active(), "id", None) == win.id, f"{win.title!r} to take focus", 2)
        return self.refresh(win) or win

    def empty_desktop_point(self, reveal: bool = True) -> tuple[int, int]:
        """A random point of the desktop not covered by any window or panel (``reveal``: when there is
        none, hide the windows with Show Desktop first)."""
        boxes = []
        for w in self.desktop.windows():
            if "xfdesktop" in str(getattr(w, "wm_class", "")).lower() or not getattr(w, "visible", True):
                continue
            boxes.append((w.x - 8, w.y - 34, w.x + w.width + 8, w.y + w.height + 8))
        width, height = self.screen
        for _ in range(200):
            x = int(self.rng.uniform(0.15, 0.95) * width)
            y = int(self.rng.uniform(0.1, 0.85) * height)
            if not any(a <= x < c and b <= y < d for a, b, c, d in boxes):
                return x, y
        if not reveal:
            raise TaskFailed("no free spot on the desktop")
        # windows cover it all: uncover the desktop first (the window manager's Show Desktop)
        self.actor.key(["ctrl", "alt", "d"])
        self.wait_until(lambda: not self.app_windows(), "the windows to hide", 4)
        return self.empty_desktop_point(reveal=False)

    # -- widgets -------------------------------------------------------------------------------

    def find(self, role: str | tuple[str, ...] | None = None, name: str | re.Pattern[str] | None = None, *,
             app: str | None = None, name_contains: str | None = None,
             within: tuple[int, int, int, int] | None = None, timeout: float = 6.0,
             with_text: bool = False) -> a11y.Widget:
        """A showing widget on the screen (see :func:`a11y.find`), within the task's deadline."""
        self.check_time()
        try:
            return a11y.find(self.desktop, role, name, app=app, name_contains=name_contains, within=within,
                             timeout=timeout, deadline=self.deadline, with_text=with_text)
        except a11y.WidgetNotFound as exc:
            # name what was missing even when the search ran into the task's deadline
            late = " (task deadline passed)" if time.monotonic() > self.deadline else ""
            raise TaskFailed(f"{exc}{late}") from None

    def click_widget(self, w: a11y.Widget, button: int = 1, count: int = 1) -> tuple[int, int]:
        """Click inside a widget's box, near its centre (people do not hit the exact centre)."""
        if any(w.name.startswith(bad) for bad in FORBIDDEN_NAMES):
            raise TaskFailed(f"refusing to click {w.name!r}")
        x = w.x + int(w.width * self.rng.uniform(0.35, 0.65))
        y = w.y + int(w.height * self.rng.uniform(0.35, 0.65))
        self.check_time()
        self.actor.click(x, y, button=button, count=count)
        return x, y

    def window_box(self, win: Any) -> tuple[int, int, int, int]:
        """The client area of a window as ``(x0, y0, x1, y1)``, for :func:`a11y.find` ``within``."""
        return win.x, win.y, win.x + win.width, win.y + win.height

    def terminal_text(self, win: Any | None = None) -> str:
        """The visible text of the terminal (inside ``win`` when given), read through a11y."""
        within = self.window_box(win) if win is not None else None
        return "\n".join(a11y.read_text(self.desktop, TERMINAL, "terminal", within=within))

    # -- applications --------------------------------------------------------------------------

    def open_menu_path(self, path: tuple[str, ...]) -> None:
        """Open the panel's Applications menu and follow ``path`` (submenus by hovering)."""
        if any(p in FORBIDDEN_NAMES for p in path):
            raise TaskFailed(f"refusing menu path {path}")
        self.click_widget(self.find("toggle button", "Applications", app="xfce4-panel"))
        for i, item in enumerate(path):
            last = i == len(path) - 1
            w = self.find("menu item" if last else "menu", item, app="xfce4-panel", timeout=4)
            self.pause(0.1, 0.4)
            if last:
                self.click_widget(w)
            else:
                # hover the submenu's entry, then slide right along it before going down
                self.actor.move(*w.center)
                self.pause(0.3, 0.6)
                self.actor.move(w.x + w.width - 10, w.center[1])

    def open_menubar(self, win: Any, app: str, title: str) -> a11y.Widget:
        """Open a window's menu-bar menu (e.g. File) and move straight down into it.

        GTK switches to a neighbouring menu when the pointer crosses its title, so the first move
        after the click is a short vertical one (a long curved glide could cross "Edit").
        """
        menu = self.find("menu", title, app=app, within=self.window_box(win))
        x, _ = self.click_widget(menu)
        self.actor.move(x, menu.y + menu.height + int(self.rng.integers(6, 12)))
        return menu

    def open_app(self, wm_class: str) -> Any:
        """Open an application from the panel's Applications menu and wait for its window."""
        before = {w.id for w in self.app_windows(wm_class)}
        self.open_menu_path(MENU_PATHS[wm_class])
        win = self.wait_window(wm_class, exclude=before, timeout=15)
        self.wait_until(lambda: getattr(self.active(), "id", None) == win.id, f"{wm_class} to take focus", 5)
        self.pause(0.3, 0.7)
        return self.refresh(win) or win

    def ensure_app(self, wm_class: str) -> Any:
        """An application's window with focus: an open one is raised, else a new one is opened."""
        win = self.window(wm_class)
        if win is None:
            return self.open_app(wm_class)
        return self.focus(win)

    def menu_open(self) -> bool:
        """Whether a popup (an open menu) is on the screen: override-redirect windows, from the X server."""
        return any(getattr(w, "type", "") == "popup" for w in self.desktop.windows())

    def type(self, text: str) -> None:
        """Type at a person's speed (8-14 characters a second)."""
        self.check_time()
        self.actor.type(text, cps=float(self.rng.uniform(8, 14)))


def frame_extents(desktop: DesktopLike, window_id: int) -> tuple[int, int, int, int]:
    """``(left, right, top, bottom)`` decoration sizes the window manager put around a window."""
    try:
        out = subprocess.run(["xprop", "-id", str(window_id), "_NET_FRAME_EXTENTS"], env=desktop.env,
                             capture_output=True, text=True, timeout=5, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        out = ""
    numbers = [int(v) for v in re.findall(r"\d+", out.split("=", 1)[-1])] if "=" in out else []
    if len(numbers) != 4:
        raise TaskFailed(f"window {window_id:#x} has no frame extents")
    return numbers[0], numbers[1], numbers[2], numbers[3]


# ---------------------------------------------------------------------------------------------
# The tasks. Each returns a short detail string on success and raises TaskFailed otherwise.
# ---------------------------------------------------------------------------------------------

Task = Callable[[TaskContext], str]
TASKS: dict[str, Task] = {}


def task(name: str) -> Callable[[Task], Task]:
    """Register a task under ``name``."""

    def register(fn: Task) -> Task:
        TASKS[name] = fn
        return fn

    return register
