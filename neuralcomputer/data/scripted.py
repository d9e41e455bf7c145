"""The ``scripted`` policy: a purposeful desktop user that performs real tasks and checks them.

The paper's lesson (Chapter 5): purposeful trajectories beat ten times more random ones. Each
task here is a small program that reads the live desktop, acts through the :class:`Actor` (so
every input lands in the action log), and verifies its effect on the world: a window appeared,
a file exists inside the episode's ``HOME`` with the typed content, a title changed, the
calculator's display reads the right number. Targets are found, never assumed:

- window geometry and state from the X server (``desktop.windows()``, ``_NET_FRAME_EXTENTS``),
- widgets (panel buttons, menu items, calculator keys, file names) from the accessibility tree
  (:mod:`neuralcomputer.data.a11y`),
- the title bar's buttons from the pixels of the title bar itself (xfwm4 draws them, they are
  not in the accessibility tree), and "an empty spot on the desktop" from the window boxes.

The policy picks tasks with the episode's ``rng`` (never the same one twice in a row) until the
episode's time is up. A task that cannot find its target raises :class:`TaskFailed`; every wait
has a timeout and each task has a deadline, so nothing hangs; after a failure the desktop is
tidied (open menus escaped). Nothing logs out or shuts down: the session menu's "Log Out" is
never a target and Alt+F4 is only sent after checking that an application window has focus.

Each attempt is recorded in :attr:`ScriptedPolicy.log` as a :class:`TaskRecord` (name, success,
start and end on the ``time.monotonic`` clock, detail); :meth:`ScriptedPolicy.describe` turns them
into caption lines for the episode. ``python -m neuralcomputer.data.scripted --help`` runs tasks
on a fresh desktop and prints per-task success rates and the policy's speed.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np

from neuralcomputer.data import a11y
from neuralcomputer.data.desktop import ActorCancelled
from neuralcomputer.data.policies import default_captions, register
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
    """What the tasks use of :class:`neuralcomputer.data.desktop.Desktop`."""

    env: dict[str, str]
    width: int
    height: int

    def screenshot(self) -> np.ndarray: ...
    def pointer(self) -> tuple[int, int]: ...
    def windows(self) -> list[Any]: ...
    def active_window(self) -> Any | None: ...


class ActorLike(Protocol):
    """The meta-actions of :class:`neuralcomputer.data.desktop.Actor` the tasks use."""

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
CLOSING_TASKS = ("close_window_button", "close_window_keyboard")


def task(name: str) -> Callable[[Task], Task]:
    """Register a task under ``name``."""

    def register(fn: Task) -> Task:
        TASKS[name] = fn
        return fn

    return register


def _token(ctx: TaskContext) -> str:
    words = ("alpha", "bravo", "cedar", "delta", "ember", "fjord", "gamma", "harbor", "indigo", "juniper")
    return f"{words[int(ctx.rng.integers(len(words)))]}{int(ctx.rng.integers(10, 1000))}"


def _run_in_terminal(ctx: TaskContext, win: Any, command: str, expect: str, timeout: float = 6.0) -> None:
    """Type a command into the focused terminal, press Return, wait for ``expect`` on its screen."""
    ctx.type(command)
    ctx.pause(0.1, 0.3)
    ctx.actor.key(["Return"])
    ctx.wait_until(lambda: expect in ctx.terminal_text(win), f"{expect!r} in the terminal", timeout)


@task("terminal_from_menu")
def terminal_from_menu(ctx: TaskContext) -> str:
    """Open a terminal from the Applications menu and list the home folder."""
    win = ctx.open_app(TERMINAL)
    _run_in_terminal(ctx, win, "ls ~", "Documents")
    return f"window {win.title!r}"


@task("terminal_from_desktop_menu")
def terminal_from_desktop_menu(ctx: TaskContext) -> str:
    """Open a terminal from the desktop's right-click menu and print the date."""
    before = {w.id for w in ctx.app_windows(TERMINAL)}
    ctx.actor.click(*ctx.empty_desktop_point(), button=3)
    ctx.click_widget(ctx.find("menu item", re.compile(r"^Open Terminal Here"), app="xfdesktop", timeout=4))
    win = ctx.wait_window(TERMINAL, exclude=before, timeout=15)
    ctx.wait_until(lambda: getattr(ctx.active(), "id", None) == win.id, "the terminal to take focus", 5)
    _run_in_terminal(ctx, win, "date +%Y-%m-%d", time.strftime("%Y"))
    return "date shown"


@task("terminal_echo")
def terminal_echo(ctx: TaskContext) -> str:
    """Echo a word in a terminal and see it printed."""
    win = ctx.ensure_app(TERMINAL)
    token = _token(ctx)
    _run_in_terminal(ctx, win, f"echo {token} | rev", token[::-1])
    return token


@task("terminal_write_file")
def terminal_write_file(ctx: TaskContext) -> str:
    """Write a file from the terminal and read it back with cat; the file must be on disk."""
    win = ctx.ensure_app(TERMINAL)
    token = _token(ctx)
    path = ctx.home / f"note_{token}.txt"
    _run_in_terminal(ctx, win, f"echo {token} > ~/{path.name} && cat ~/{path.name} | wc -c", str(len(token) + 1))
    ctx.wait_until(lambda: path.is_file() and path.read_text().strip() == token, f"{path} on disk", 3)
    return path.name


@task("terminal_scroll")
def terminal_scroll(ctx: TaskContext) -> str:
    """Print a long listing, scroll back up with the wheel and down again; the view must move."""
    win = ctx.ensure_app(TERMINAL)
    _run_in_terminal(ctx, win, "seq 1 200", "\n200")
    term = ctx.find("terminal", app=TERMINAL, within=ctx.window_box(win))
    x, y = term.center
    before = ctx.desktop.screenshot()
    ctx.actor.scroll(x, y, 0, -int(ctx.rng.integers(4, 9)))
    ctx.pause(0.3, 0.6)

    def moved() -> bool:
        now = ctx.desktop.screenshot()
        x0, y0, x1, y1 = term.box
        return bool((now[y0:y1, x0:x1] != before[y0:y1, x0:x1]).any())

    ctx.wait_until(moved, "the terminal view to scroll", 4)
    ctx.actor.scroll(x, y, 0, int(ctx.rng.integers(4, 12)))
    return "scrolled"


def _files_list_view(ctx: TaskContext, win: Any) -> None:
    """Switch the file manager to its detailed list view (its icon view has no accessible items)."""
    ctx.open_menubar(win, "Thunar", "View")
    item = ctx.find(("check menu item", "radio menu item", "menu item"), re.compile(r"^(List View|Detailed List)"), app="Thunar", timeout=4)
    ctx.click_widget(item)
    ctx.pause(0.3, 0.6)


@task("files_open_folder")
def files_open_folder(ctx: TaskContext) -> str:
    """Open the file manager, double-click a folder in the list view; the title names the folder."""
    win = ctx.ensure_app(FILES)
    ctx.click_widget(ctx.find("push button", "Home", app="Thunar", within=ctx.window_box(win)))
    ctx.wait_until(lambda: (w := ctx.refresh(win)) is not None and w.title.startswith(ctx.home.name), "home", 5)
    _files_list_view(ctx, win)
    folder = ("Documents", "Music", "Pictures", "Projects")[int(ctx.rng.integers(4))]
    cell = ctx.find("table cell", folder, app="Thunar", within=ctx.window_box(win))
    ctx.click_widget(cell, count=2)
    ctx.wait_until(lambda: (w := ctx.refresh(win)) is not None and folder in w.title, f"title {folder!r}", 6)
    return folder


@task("files_location_bar")
def files_location_bar(ctx: TaskContext) -> str:
    """Go to a folder by typing its path into the file manager's location bar (Ctrl+L)."""
    win = ctx.ensure_app(FILES)
    folder = ("Projects", "Documents", "Music")[int(ctx.rng.integers(3))]
    ctx.actor.key(["ctrl", "l"])
    ctx.pause(0.2, 0.5)
    ctx.type(f"{ctx.home}/{folder}\n")
    ctx.wait_until(lambda: (w := ctx.refresh(win)) is not None and w.title.startswith(folder), f"title {folder!r}", 6)
    return folder


@task("files_new_folder")
def files_new_folder(ctx: TaskContext) -> str:
    """Create a folder with the file manager's File > Create Folder... dialog; it must exist on disk."""
    win = ctx.ensure_app(FILES)
    # go home first so the folder lands in a known place, by the toolbar's Home button
    ctx.click_widget(ctx.find("push button", "Home", app="Thunar", within=ctx.window_box(win)))
    ctx.wait_until(lambda: (w := ctx.refresh(win)) is not None and w.title.startswith(ctx.home.name), "home", 5)
    ctx.open_menubar(win, "Thunar", "File")
    ctx.click_widget(ctx.find("menu item", re.compile(r"^Create Folder"), app="Thunar", timeout=4))
    dialog = ctx.wait_window(FILES, exclude=[win.id], timeout=6)  # the "New Folder" dialog
    ctx.find("text", app="Thunar", within=ctx.window_box(dialog), timeout=4)  # its name entry
    name = f"folder_{_token(ctx)}"
    ctx.pause(0.3, 0.6)
    ctx.actor.key(["ctrl", "a"])
    ctx.type(name)
    ctx.actor.key(["Return"])
    ctx.wait_until(lambda: (ctx.home / name).is_dir(), f"{name} on disk", 6)
    return name


def _new_document(ctx: TaskContext) -> Any:
    """An empty editor document: a new editor window from the menu, or, when the editor is open
    (Mousepad then opens new documents as tabs of its window), Ctrl+N in it."""
    win = ctx.window(EDITOR)
    if win is None:
        return ctx.open_app(EDITOR)
    win = ctx.focus(win)
    ctx.actor.key(["ctrl", "n"])
    ctx.wait_until(lambda: (w := ctx.refresh(win)) is not None and w.title.startswith("Untitled"), "a new document", 5)
    ctx.pause(0.3, 0.6)
    return ctx.refresh(win) or win


@task("editor_save_file")
def editor_save_file(ctx: TaskContext) -> str:
    """Open the editor, type a note, save it with Ctrl+S and a typed name; the file must match."""
    win = _new_document(ctx)
    token = _token(ctx)
    text = f"Shopping list {token}\n- apples\n- bread\n"
    ctx.type(text)
    ctx.actor.key(["ctrl", "s"])
    dialog = ctx.wait_window(EDITOR, "Save As", exclude=[win.id], timeout=8)
    ctx.pause(0.4, 0.9)
    path = ctx.home / f"list_{token}.txt"
    ctx.actor.key(["ctrl", "a"])
    ctx.type(str(path))
    ctx.actor.key(["Return"])
    ctx.wait_until(lambda: ctx.refresh(dialog) is None, "the save dialog to close", 6)
    ctx.wait_until(lambda: path.is_file() and path.read_text() == text, f"{path.name} with the typed text", 6)
    return path.name


@task("editor_open_file")
def editor_open_file(ctx: TaskContext) -> str:
    """Open a file in the editor through File > Open... and a typed path; the title names it."""
    win = ctx.ensure_app(EDITOR)
    name = ("readme.txt", "todo.txt", "long.txt")[int(ctx.rng.integers(3))]
    ctx.open_menubar(win, EDITOR, "File")
    ctx.click_widget(ctx.find("menu item", re.compile(r"^Open\b"), app=EDITOR, timeout=4))
    dialog = ctx.wait_window(EDITOR, "Open", exclude=[win.id], timeout=8)
    ctx.pause(0.4, 0.9)
    ctx.type(str(ctx.home / "Documents" / name))  # typing a "/" opens the chooser's location field
    ctx.pause(0.2, 0.5)
    ctx.actor.key(["Return"])
    ctx.wait_until(lambda: ctx.refresh(dialog) is None, "the open dialog to close", 6)
    ctx.wait_window(EDITOR, name, timeout=6)
    return name


@task("editor_scroll")
def editor_scroll(ctx: TaskContext) -> str:
    """Open a long file in the editor and scroll through it with the wheel; the view must move."""
    win = ctx.ensure_app(EDITOR)
    ctx.actor.key(["ctrl", "o"])
    dialog = ctx.wait_window(EDITOR, "Open", exclude=[win.id], timeout=8)
    ctx.pause(0.3, 0.6)
    ctx.type(str(ctx.home / "Documents" / "long.txt"))
    ctx.actor.key(["Return"])
    ctx.wait_until(lambda: ctx.refresh(dialog) is None, "the open dialog to close", 6)
    win = ctx.wait_window(EDITOR, "long.txt", timeout=6)
    view = ctx.find("text", app=EDITOR, within=ctx.window_box(win))
    x, y = view.center
    before = ctx.desktop.screenshot()
    ctx.actor.scroll(x, y, 0, int(ctx.rng.integers(5, 12)))

    def moved() -> bool:
        now = ctx.desktop.screenshot()
        x0, y0, x1, y1 = view.box
        return bool((now[y0:y1, x0:x1] != before[y0:y1, x0:x1]).any())

    ctx.wait_until(moved, "the editor view to scroll", 4)
    ctx.pause(0.3, 0.8)
    ctx.actor.scroll(x, y, 0, -int(ctx.rng.integers(2, 6)))
    return "scrolled"


@task("copy_paste_editor_to_terminal")
def copy_paste_editor_to_terminal(ctx: TaskContext) -> str:
    """Type a word in the editor, select it by dragging, copy, paste it into a terminal's command line."""
    _new_document(ctx)
    token = _token(ctx)
    ctx.type(f"copy {token} now\n")
    ctx.pause(0.3, 0.6)
    try:
        first, last = a11y.text_span(ctx.desktop, EDITOR, "text", token)
    except a11y.WidgetNotFound as exc:
        raise TaskFailed(str(exc)) from None
    y = first[1] + first[3] // 2
    ctx.actor.drag(first[0] + 1, y, last[0] + last[2] - 1, last[1] + last[3] // 2)
    ctx.pause(0.2, 0.4)
    ctx.actor.key(["ctrl", "c"])
    term = ctx.ensure_app(TERMINAL)
    ctx.type("echo pasted:")
    ctx.actor.key(["ctrl", "shift", "v"])
    ctx.pause(0.2, 0.4)
    ctx.actor.key(["Return"])
    ctx.wait_until(lambda: f"pasted:{token}\n" in ctx.terminal_text(term) or
                   ctx.terminal_text(term).count(f"pasted:{token}") >= 2, "the pasted word echoed", 6)
    return token


def _calc_display(ctx: TaskContext, win: Any) -> str:
    texts = a11y.read_text(ctx.desktop, CALCULATOR, "text", within=ctx.window_box(win))
    return texts[0].strip() if texts else ""


@task("calculator_buttons")
def calculator_buttons(ctx: TaskContext) -> str:
    """Compute a sum by clicking the calculator's keys (found in the a11y tree); check the display."""
    win = ctx.ensure_app(CALCULATOR)
    a, b = int(ctx.rng.integers(2, 99)), int(ctx.rng.integers(2, 99))
    op = "+" if ctx.rng.random() < 0.5 else "*"
    keys = ["AC", *str(a), op, *str(b), "="]
    box = ctx.window_box(win)
    buttons = {w.name: w for w in a11y.find_all(ctx.desktop, "toggle button", app=CALCULATOR, within=box)}
    missing = [k for k in keys if k not in buttons]
    if missing:
        raise TaskFailed(f"calculator keys not found: {missing}")
    for k in keys:
        ctx.click_widget(buttons[k])
        ctx.pause(0.15, 0.45)
    want = str(a + b if op == "+" else a * b)
    ctx.wait_until(lambda: _calc_display(ctx, win) == want, f"{want} on the display", 4)
    return f"{a}{op}{b}={want}"


@task("calculator_keyboard")
def calculator_keyboard(ctx: TaskContext) -> str:
    """Type an expression into the calculator and press Return; check the display."""
    win = ctx.ensure_app(CALCULATOR)
    a, b = int(ctx.rng.integers(10, 500)), int(ctx.rng.integers(2, 50))
    ctx.actor.key(["Escape"])  # galculator: Escape clears (AC)
    ctx.type(f"{a}-{b}")
    ctx.actor.key(["Return"])
    want = str(a - b)
    ctx.wait_until(lambda: _calc_display(ctx, win) == want, f"{want} on the display", 4)
    return f"{a}-{b}={want}"


@task("help_about")
def help_about(ctx: TaskContext) -> str:
    """Open Help > About in an application and close the dialog with its Close button."""
    cls = (EDITOR, CALCULATOR, TERMINAL)[int(ctx.rng.integers(3))]
    app = {EDITOR: "mousepad", CALCULATOR: "galculator", TERMINAL: "xfce4-terminal"}[cls]
    win = ctx.ensure_app(cls)
    ctx.open_menubar(win, app, "Help")
    ctx.click_widget(ctx.find("menu item", re.compile(r"^About"), app=app, timeout=4))
    dialog = ctx.wait_window(cls, "About", exclude=[win.id], timeout=8)
    ctx.pause(0.8, 1.5)  # read it
    close = ctx.find("push button", "Close", app=app, within=ctx.window_box(ctx.refresh(dialog) or dialog))
    ctx.click_widget(close)
    ctx.wait_until(lambda: ctx.refresh(dialog) is None, "the About dialog to close", 5)
    return cls


def _some_window(ctx: TaskContext) -> Any:
    """An application window to work on: an open one chosen at random, or a new terminal."""
    wins = [w for w in ctx.app_windows() if "About" not in w.title]
    if not wins:
        return ctx.open_app((TERMINAL, EDITOR, CALCULATOR)[int(ctx.rng.integers(3))])
    return ctx.focus(wins[int(ctx.rng.integers(len(wins)))])


def _unmaximize(ctx: TaskContext, win: Any) -> Any:
    """Restore a maximised window (double-click its title), so it can be moved and resized."""
    if win.width >= ctx.screen[0] - 4:
        size = (win.width, win.height)
        ctx.actor.click(*ctx.title_point(win), count=2)
        ctx.wait_until(lambda: (w := ctx.refresh(win)) is not None and (w.width, w.height) != size, "restore", 4)
        win = ctx.refresh(win) or win
    return win


@task("window_move")
def window_move(ctx: TaskContext) -> str:
    """Drag a window by its title bar; it must end up where it was dropped."""
    win = _unmaximize(ctx, _some_window(ctx))
    x0, y0 = ctx.title_point(win)
    width, height = ctx.screen
    dx = int(ctx.rng.integers(-width // 4, width // 4))
    dy = int(ctx.rng.integers(-height // 6, height // 6))
    x1, y1 = min(max(x0 + dx, 20), width - 20), min(max(y0 + dy, 40), height - 80)
    ctx.actor.drag(x0, y0, x1, y1)
    want = (win.x + x1 - x0, win.y + y1 - y0)
    ctx.wait_until(lambda: (w := ctx.refresh(win)) is not None and abs(w.x - want[0]) <= 24 and
                   abs(w.y - want[1]) <= 24, "the window at the drop point", 4)
    return f"moved by ({x1 - x0}, {y1 - y0})"


@task("window_resize")
def window_resize(ctx: TaskContext) -> str:
    """Resize a window by dragging its bottom-right corner; its size must change."""
    win = _unmaximize(ctx, _some_window(ctx))
    f = ctx.frame(win)
    x0, y0 = f.x1 - 2, f.y1 - 2  # inside the corner of the border
    width, height = ctx.screen
    x1 = min(max(x0 + int(ctx.rng.integers(-150, 150)), f.x0 + 300), width - 5)
    y1 = min(max(y0 + int(ctx.rng.integers(-120, 120)), f.y0 + 250), height - 5)
    if abs(x1 - x0) < 20 and abs(y1 - y0) < 20:
        x1 = max(x0 - 80, f.x0 + 300)
    size = (win.width, win.height)
    ctx.actor.drag(x0, y0, x1, y1)
    ctx.wait_until(lambda: (w := ctx.refresh(win)) is not None and (w.width, w.height) != size, "a new size", 4)
    w = ctx.refresh(win)
    return f"{size[0]}x{size[1]} -> {w.width}x{w.height}" if w else "resized"


def _is_maximized(ctx: TaskContext, win: Any) -> bool:
    w = ctx.refresh(win)
    return w is not None and w.width >= ctx.screen[0] - 4 and w.height >= ctx.screen[1] // 2


@task("window_maximize_title")
def window_maximize_title(ctx: TaskContext) -> str:
    """Maximise a window by double-clicking its title bar, then restore it the same way."""
    win = _unmaximize(ctx, _some_window(ctx))
    ctx.actor.click(*ctx.title_point(win), count=2)
    ctx.wait_until(lambda: _is_maximized(ctx, win), "the window to fill the screen", 4)
    ctx.pause(0.5, 1.2)
    big = ctx.refresh(win) or win
    ctx.actor.click(*ctx.title_point(big), count=2)
    ctx.wait_until(lambda: not _is_maximized(ctx, win), "the window to restore", 4)
    return win.title


@task("window_maximize_button")
def window_maximize_button(ctx: TaskContext) -> str:
    """Maximise a window with its title bar's maximise button, then restore it with the same button."""
    win = _unmaximize(ctx, _some_window(ctx))
    for want in (True, False):
        current = ctx.refresh(win) or win
        buttons = ctx.title_buttons(current)
        ctx.actor.click(buttons[1], ctx.frame(current).title_y)
        ctx.wait_until(lambda w=want: _is_maximized(ctx, win) == w, "maximised" if want else "restored", 4)
        ctx.pause(0.4, 1.0)
    return win.title


@task("window_minimize_restore")
def window_minimize_restore(ctx: TaskContext) -> str:
    """Minimise a window with its title bar button and bring it back from the panel's task list."""
    win = _unmaximize(ctx, _some_window(ctx))
    buttons = ctx.title_buttons(win)
    ctx.actor.click(buttons[2], ctx.frame(win).title_y)
    ctx.wait_until(lambda: ctx.refresh(win) is None, "the window to minimise", 4)
    ctx.pause(0.5, 1.2)
    ctx.click_widget(ctx.find("toggle button", name=win.title, app="xfce4-panel"))
    ctx.wait_until(lambda: ctx.refresh(win) is not None, "the window to come back", 4)
    return win.title


def _close_window(ctx: TaskContext, win: Any) -> None:
    """After asking a window to close, answer an unsaved-changes question with "Don't Save"."""
    def gone_or_asking() -> str | None:
        if ctx.refresh(win) is None:
            return "gone"
        asks = a11y.find_all(ctx.desktop, "push button", re.compile(r"^(Don.t Save|Close Window|Close)$"),
                             where=lambda w: not w.contains(*ctx.title_point(win)))
        return "ask" if any(w.name != "Close" for w in asks) else None

    if ctx.wait_until(gone_or_asking, "the window to close or ask", 5) == "ask":
        ctx.pause(0.4, 0.8)
        ctx.click_widget(ctx.find("push button", re.compile(r"^(Don.t Save|Close Window)$")))
        ctx.wait_until(lambda: ctx.refresh(win) is None, "the window to close", 5)


@task("close_window_button")
def close_window_button(ctx: TaskContext) -> str:
    """Close a window with its title bar's close button; it must disappear."""
    wins = ctx.app_windows()
    if not wins:
        raise TaskFailed("no window to close")
    win = _unmaximize(ctx, ctx.focus(wins[int(ctx.rng.integers(len(wins)))]))
    ctx.actor.click(ctx.title_buttons(win)[0], ctx.frame(win).title_y)
    _close_window(ctx, win)
    return win.title


@task("close_window_keyboard")
def close_window_keyboard(ctx: TaskContext) -> str:
    """Close the focused application window with Alt+F4 (only after checking what has focus)."""
    wins = ctx.app_windows()
    if not wins:
        raise TaskFailed("no window to close")
    win = ctx.focus(wins[int(ctx.rng.integers(len(wins)))])
    active = ctx.active()
    # Alt+F4 on the desktop itself opens the log-out dialog: only ever send it to an app window
    if active is None or active.id != win.id or active.id not in {w.id for w in ctx.app_windows()}:
        raise TaskFailed("focus is not on an application window; not sending Alt+F4")
    ctx.actor.key(["alt", "F4"])
    _close_window(ctx, win)
    return win.title


@task("switch_alt_tab")
def switch_alt_tab(ctx: TaskContext) -> str:
    """Switch to another window with Alt+Tab; focus must move."""
    if len(ctx.app_windows()) < 2:
        ctx.open_app((TERMINAL, CALCULATOR)[int(ctx.rng.integers(2))])
    first = ctx.active()
    ctx.actor.key(["alt", "Tab"])
    ctx.wait_until(lambda: (a := ctx.active()) is not None and a.id != getattr(first, "id", None), "focus to move", 4)
    return f"{getattr(first, 'title', '?')} -> {ctx.active().title}"  # type: ignore[union-attr]


@task("switch_task_list")
def switch_task_list(ctx: TaskContext) -> str:
    """Switch windows by clicking another window's button in the panel's task list."""
    if len(ctx.app_windows()) < 2:
        ctx.open_app((EDITOR, CALCULATOR)[int(ctx.rng.integers(2))])
    active = ctx.active()
    others = [w for w in ctx.app_windows() if w.id != getattr(active, "id", None)]
    if not others:
        raise TaskFailed("no other window to switch to")
    target = others[int(ctx.rng.integers(len(others)))]
    ctx.click_widget(ctx.find("toggle button", name=target.title, app="xfce4-panel"))
    ctx.wait_until(lambda: getattr(ctx.active(), "id", None) == target.id, f"{target.title!r} to take focus", 4)
    return target.title


@task("desktop_context_menu")
def desktop_context_menu(ctx: TaskContext) -> str:
    """Right-click an empty spot of the desktop, look at its menu, dismiss it with Escape."""
    x, y = ctx.empty_desktop_point()
    ctx.actor.click(x, y, button=3)
    menu = ctx.find("menu item", app="xfdesktop", timeout=4)
    ctx.pause(0.6, 1.4)
    ctx.actor.key(["Escape"])
    ctx.wait_until(lambda: not a11y.find_all(ctx.desktop, "menu item", app="xfdesktop"), "the menu to close", 4)
    return f"menu with {menu.name!r}"


@task("show_desktop")
def show_desktop(ctx: TaskContext) -> str:
    """Hide every window with the window manager's Show Desktop shortcut (Ctrl+Alt+D), then bring them back."""
    if not ctx.app_windows():
        ctx.open_app((TERMINAL, CALCULATOR)[int(ctx.rng.integers(2))])
    shown = {w.id for w in ctx.app_windows()}
    ctx.actor.key(["ctrl", "alt", "d"])
    ctx.wait_until(lambda: not ctx.app_windows(), "all windows to hide", 4)
    ctx.pause(0.5, 1.2)
    ctx.actor.key(["ctrl", "alt", "d"])
    ctx.wait_until(lambda: shown <= {w.id for w in ctx.app_windows()}, "the windows to come back", 4)
    return f"{len(shown)} windows"


@task("applications_menu_browse")
def applications_menu_browse(ctx: TaskContext) -> str:
    """Open the Applications menu, look through a submenu, and close it again without choosing."""
    ctx.click_widget(ctx.find("toggle button", "Applications", app="xfce4-panel"))
    sub = ctx.find("menu", ("Settings", "Accessories", "System")[int(ctx.rng.integers(3))], app="xfce4-panel")
    ctx.actor.move(*sub.center)
    ctx.pause(0.4, 0.8)
    items = ctx.wait_until(lambda: [w for w in a11y.find_all(ctx.desktop, "menu item", app="xfce4-panel")
                                    if w.x > sub.x + sub.width // 2], f"the {sub.name} submenu", 4)
    for w in items[: int(ctx.rng.integers(1, 4))]:
        ctx.actor.move(*w.center)
        ctx.pause(0.2, 0.5)
    ctx.actor.key(["Escape"])
    ctx.actor.key(["Escape"])
    ctx.wait_until(lambda: not ctx.menu_open(), "the menu to close", 4)
    return f"{sub.name}: {len(items)} items"


# ---------------------------------------------------------------------------------------------
# The policy.
# ---------------------------------------------------------------------------------------------

SEED_FILES = {
    "Documents/readme.txt": "This is the home folder of a neural computer's training desktop.\n",
    "Documents/todo.txt": "- water the plants\n- call the bank\n- finish the report\n",
    "Documents/long.txt": "".join(f"line {i}: the quick brown fox jumps over the lazy dog\n" for i in range(1, 301)),
    "Projects/plan.md": "# Plan\n\n1. collect data\n2. train\n3. evaluate\n",
}
SEED_DIRS = ("Documents", "Music", "Pictures", "Projects", "Downloads")


def seed_home(home: Path) -> None:
    """Give the episode's fresh HOME the folders and files a person's home has (tasks open them)."""
    for d in SEED_DIRS:
        (home / d).mkdir(parents=True, exist_ok=True)
    for rel, text in SEED_FILES.items():
        path = home / rel
        if not path.exists():
            path.write_text(text)


@dataclass
class ScriptedPolicy:
    """A purposeful agent: random real tasks (``TASKS``), each found on and verified against the live desktop.

    ``tasks`` restricts the choice (names from ``TASKS``); ``task_seconds`` is each task's deadline.
    After :meth:`run`, :attr:`log` holds one :class:`TaskRecord` per attempt.
    """

    tasks: tuple[str, ...] = tuple(TASKS)
    task_seconds: float = TASK_SECONDS
    name: str = "scripted"
    log: list[TaskRecord] = field(default_factory=list)

    def __post_init__(self) -> None:
        unknown = [t for t in self.tasks if t not in TASKS]
        if unknown:
            raise NCError(f"unknown scripted task(s) {', '.join(unknown)}; known: {', '.join(TASKS)}")

    def run(self, actor: ActorLike, desktop: DesktopLike, rng: np.random.Generator, seconds: float) -> None:
        """Perform random tasks until ``seconds`` have passed (the last one is cut at the deadline)."""
        episode_end = time.monotonic() + seconds
        home = Path(desktop.env.get("HOME", str(Path.home())))
        seed_home(home)
        previous = None
        while time.monotonic() < episode_end - 1.0 and not getattr(actor, "cancelled", False):
            name = self._choose(rng, desktop, previous)
            previous = name
            if self.run_task(name, actor, desktop, rng, episode_end) is None:
                break

    def _choose(self, rng: np.random.Generator, desktop: DesktopLike, previous: str | None) -> str:
        choices = [t for t in self.tasks if t != previous] or list(self.tasks)
        try:
            crowded = len(TaskContext(None, desktop, rng, time.monotonic() + 5).app_windows()) >= MAX_APP_WINDOWS  # type: ignore[arg-type]
        except Exception:  # a failed window query only loses the preference
            crowded = False
        closing = [t for t in choices if t in CLOSING_TASKS]
        if crowded and closing:
            choices = closing
        return choices[int(rng.integers(len(choices)))]

    def run_task(self, name: str, actor: ActorLike, desktop: DesktopLike, rng: np.random.Generator,
                 episode_end: float | None = None) -> TaskRecord | None:
        """Run one task now and log it; ``None`` when the episode ended before it finished."""
        seed_home(Path(desktop.env.get("HOME", str(Path.home()))))
        start = time.monotonic()
        end_of_episode = episode_end if episode_end is not None else start + self.task_seconds + 5
        ctx = TaskContext(actor, desktop, rng, end_of_episode, self.task_seconds)
        try:
            detail = TASKS[name](ctx)
            record = TaskRecord(name, True, start, time.monotonic(), detail)
        except EpisodeOver:
            self.log.append(TaskRecord(name, False, start, time.monotonic(), "cut by the end of the episode"))
            return None
        except ActorCancelled:  # the collector stopped the episode: the normal end, passed on
            self.log.append(TaskRecord(name, False, start, time.monotonic(), "cut by the end of the episode"))
            raise
        except (TaskFailed, a11y.A11yUnavailable) as exc:
            record = TaskRecord(name, False, start, time.monotonic(), str(exc))
            self._tidy(ctx)
        except Exception as exc:
            # a bug in one task must not end the episode, but a dead desktop must (the collector cuts it)
            alive = getattr(desktop, "alive", lambda: True)
            if not alive():
                raise
            record = TaskRecord(name, False, start, time.monotonic(), f"{type(exc).__name__}: {exc}")
            self._tidy(ctx)
        self.log.append(record)
        return record

    def _tidy(self, ctx: TaskContext) -> None:
        """After a failure: close stray menus and dialogs a task may have left open."""
        ctx.deadline = min(ctx.episode_end, time.monotonic() + 8)
        try:
            for _ in range(3):
                if ctx.menu_open():
                    ctx.actor.key(["Escape"])
                    ctx.pause(0.2, 0.4)
            for w in ctx.app_windows():
                if getattr(w, "type", "normal") == "dialog" or STRAY_WINDOWS.search(w.title):
                    ctx.focus(w)
                    ctx.actor.key(["Escape"])
                    ctx.pause(0.3, 0.5)
                    if ctx.refresh(w) is not None and getattr(ctx.active(), "id", None) == w.id:
                        ctx.actor.key(["alt", "F4"])  # focus checked on that very window just above
        except (TaskFailed, EpisodeOver, a11y.A11yUnavailable, NCError):
            pass

    def captions(self, metas: list[dict[str, Any]]) -> dict[str, str]:
        """The episode's captions: the tasks attempted (semantic), then the meta-actions (detailed)."""
        done = [r for r in self.log if r.ok]
        names = ", ".join(r.name.replace("_", " ") for r in done) or "no task completed"
        caps = default_captions(f"purposeful tasks on an XFCE desktop: {names}", metas)
        caps["regular"] += " Tasks: " + "; ".join(self.describe()) + "."
        return caps

    def describe(self) -> list[str]:
        """One caption line per task attempt, e.g. ``"calculator_buttons: ok (12+7=19)"``."""
        return [f"{r.name}: {'ok' if r.ok else 'failed'}" + (f" ({r.detail})" if r.detail else "") for r in self.log]


def task_summary(records: Iterable[TaskRecord]) -> dict[str, dict[str, float]]:
    """Per task: attempts, successes, success rate and mean seconds."""
    out: dict[str, dict[str, float]] = {}
    for r in records:
        s = out.setdefault(r.name, {"attempts": 0, "ok": 0, "seconds": 0.0})
        s["attempts"] += 1
        s["ok"] += int(r.ok)
        s["seconds"] += r.end - r.start
    for s in out.values():
        s["rate"] = s["ok"] / s["attempts"]
        s["seconds"] = s["seconds"] / s["attempts"]
    return out


register("scripted", ScriptedPolicy)


def main(argv: list[str] | None = None) -> None:
    """Measure the policy: each task's success rate, and px/frame and actions/s of recorded episodes."""
    import argparse
    import json

    from neuralcomputer.data.collect import record_episode
    from neuralcomputer.data.desktop import Actor, Desktop

    parser = argparse.ArgumentParser(prog="python -m neuralcomputer.data.scripted", description=main.__doc__)
    parser.add_argument("--runs", type=int, default=3, help="fresh desktops; each runs every task once (shuffled)")
    parser.add_argument("--episodes", type=int, default=3, help="scripted episodes recorded for the speed figures")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each episode")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tasks", nargs="*", default=list(TASKS), help="task names (default: all)")
    args = parser.parse_args(argv)
    records: list[TaskRecord] = []
    for run in range(args.runs):
        rng = np.random.default_rng([args.seed, run])
        policy = ScriptedPolicy(tasks=tuple(args.tasks))
        with Desktop() as desktop:  # Desktop retries a start that fails (START_ATTEMPTS)
            actor = Actor(desktop, rng=np.random.default_rng([args.seed, run, 1]))
            for name in rng.permutation(args.tasks):
                record = policy.run_task(str(name), actor, desktop, rng)
                if record is not None:
                    print(json.dumps({"run": run, **record.to_json()}), flush=True)
            actor.close()
        records += policy.log
    episodes = []
    for index in range(args.episodes):
        policy = ScriptedPolicy(tasks=tuple(args.tasks))
        ep = record_episode("scripted", args.seed, index, seconds=args.seconds, policy=policy)
        episodes.append({"px_per_frame": round(ep.px_per_frame, 2), "actions_per_s": round(ep.actions_per_s, 3),
                         "frames": len(ep.frames), "tasks": len(policy.log), "tasks_ok": sum(r.ok for r in policy.log),
                         "pointer_mismatches": len(ep.mismatches)})
        print(json.dumps({"episode": index, **episodes[-1]}), flush=True)
    print(json.dumps({"tasks": task_summary(records), "episodes": episodes}, indent=1))


if __name__ == "__main__":
    main()
