"""The scripted policy's catalogue: one function per desktop task, registered with ``@task(name)``.

Each task finds its target on the live desktop (X windows, accessibility tree, title-bar pixels), acts
through the actor, verifies the effect (a window appeared, a file holds the typed text, the calculator
reads the right number) and returns a one-line description for the captions; it raises
:class:`~neuralcomputer.data.desktop.task_context.TaskFailed` when it cannot. To add a task, write one
function here; the policy (:mod:`~neuralcomputer.data.desktop.scripted`) picks it up by name.
"""

from __future__ import annotations

import re
import time
from typing import Any

from neuralcomputer.data.desktop import a11y
from neuralcomputer.data.desktop.task_context import (
    CALCULATOR,
    EDITOR,
    FILES,
    TERMINAL,
    TaskContext,
    TaskFailed,
    task,
)

CLOSING_TASKS = ("close_window_button", "close_window_keyboard")


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
