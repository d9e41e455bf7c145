"""Find widgets on a live desktop through the accessibility tree (AT-SPI).

The scripted policy must find its targets on the screen the way a person would, not from
hard-coded coordinates: window geometry comes from the X server (``Desktop.windows()``), widget
positions (menu items, buttons, the terminal's text, a calculator's display) come from here.

AT-SPI is only importable from Debian's system Python (``python3-pyatspi`` / ``gir1.2-atspi-2.0``
are not on PyPI), so the tree is read by a small helper program run with ``/usr/bin/python3``
inside the desktop's environment (its ``DISPLAY`` and session D-Bus address, through which the
accessibility bus is found); the helper prints JSON, parsed here into :class:`Widget` records.
GTK 3 applications export their tree without any setting, as long as ``NO_AT_BRIDGE`` is not
``1`` in the session's environment (GTK 2's ``GTK_MODULES=gail:atk-bridge`` is not needed).

Coordinates are screen pixels (x right, y down), as in the action log. Subtrees of widgets that
are not *showing* (closed menus, hidden tool bars) are pruned: their extents are meaningless.
The extents say nothing about occlusion: raise a window before clicking inside it.

A dump of every application on an XFCE desktop takes about 0.1 s, so callers simply poll
(:func:`find` waits until a widget appears or its timeout passes).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from neuralcomputer.errors import NCError

SYSTEM_PYTHON = os.environ.get("NC_A11Y_PYTHON", "/usr/bin/python3")

# Roles whose text is worth reading back (a calculator's display, a terminal, an entry).
TEXT_ROLES = ("text", "terminal", "entry", "password text", "paragraph", "spin button", "document text")


class DesktopEnv(Protocol):
    """What this module needs of a desktop: the environment of processes inside its session."""

    env: Mapping[str, str]


class WidgetNotFound(NCError):
    """No widget matched within the timeout (the message says what was looked for)."""


class A11yUnavailable(NCError):
    """The accessibility tree cannot be read (no system pyatspi, no session bus, helper crashed)."""


@dataclass(frozen=True)
class Widget:
    """One node of the accessibility tree: role, name, screen box, states, and text where asked."""

    app: str  # the application's name as AT-SPI reports it, e.g. "xfce4-panel", "galculator"
    pid: int
    role: str  # e.g. "push button", "menu item", "toggle button", "frame", "terminal"
    name: str
    x: int
    y: int
    width: int
    height: int
    states: frozenset[str] = field(default_factory=frozenset)
    text: str | None = None
    depth: int = 0
    parent: int = -1  # index of the parent in the list it came from; -1 for a top-level window

    @property
    def center(self) -> tuple[int, int]:
        """The box's centre, where a click lands."""
        return self.x + self.width // 2, self.y + self.height // 2

    @property
    def box(self) -> tuple[int, int, int, int]:
        """``(x0, y0, x1, y1)``, exclusive end."""
        return self.x, self.y, self.x + self.width, self.y + self.height

    def on_screen(self, width: int, height: int) -> bool:
        """Whether the centre lies on a ``width`` x ``height`` screen and the box is not empty."""
        cx, cy = self.center
        return self.width > 0 and self.height > 0 and 0 <= cx < width and 0 <= cy < height

    def contains(self, x: int, y: int) -> bool:
        """Whether the screen point lies inside the box."""
        return self.x <= x < self.x + self.width and self.y <= y < self.y + self.height


# The helper runs under the system Python; it receives its query as JSON in argv[1] and prints
# {"nodes": [...]} or {"error": "..."}. It walks depth-first and prunes non-showing subtrees.
_HELPER = r"""
import json, sys
q = json.loads(sys.argv[1])
try:
    import gi
    gi.require_version("Atspi", "2.0")
    from gi.repository import Atspi
except Exception as exc:
    print(json.dumps({"error": "cannot import Atspi: %s" % exc})); sys.exit(0)
nodes = []
TEXT_ROLES = set(q["text_roles"])
def states(acc):
    s = acc.get_state_set()
    return [Atspi.StateType(v).value_nick for v in s.get_states()]
def walk(acc, app, pid, depth, parent):
    if len(nodes) >= q["max_nodes"]:
        return
    try:
        role = acc.get_role_name()
        name = acc.get_name() or ""
        st = states(acc)
        try:
            e = acc.get_extents(Atspi.CoordType.SCREEN)
            box = [e.x, e.y, e.width, e.height]
        except Exception:
            box = [0, 0, 0, 0]
    except Exception:
        return
    if depth > 0 and q["showing_only"] and "showing" not in st:
        return
    text = None
    if q["with_text"] and role in TEXT_ROLES:
        try:
            t = acc.get_text_iface()
            if t is not None:
                text = t.get_text(0, min(t.get_character_count(), q["max_text"]))
        except Exception:
            text = None
    me = len(nodes)
    nodes.append({"app": app, "pid": pid, "role": role, "name": name, "box": box, "states": st,
                  "text": text, "depth": depth, "parent": parent})
    if depth >= q["max_depth"]:
        return
    try:
        n = acc.get_child_count()
    except Exception:
        return
    for i in range(n):
        try:
            child = acc.get_child_at_index(i)
        except Exception:
            continue
        if child is not None:
            walk(child, app, pid, depth + 1, me)
try:
    desktop = Atspi.get_desktop(0)
    for i in range(desktop.get_child_count()):
        app = desktop.get_child_at_index(i)
        if app is None:
            continue
        try:
            app_name = app.get_name() or ""
            pid = app.get_process_id()
        except Exception:
            continue
        if q["apps"] and app_name.lower() not in q["apps"]:
            continue
        for j in range(app.get_child_count()):
            top = app.get_child_at_index(j)
            if top is not None:
                walk(top, app_name, pid, 0, -1)
except Exception as exc:
    print(json.dumps({"error": "%s: %s" % (type(exc).__name__, exc)})); sys.exit(0)
print(json.dumps({"nodes": nodes}))
"""


def tree(desktop: DesktopEnv, apps: str | Sequence[str] | None = None, *, with_text: bool = False,
         showing_only: bool = True, max_depth: int = 40, max_nodes: int = 5000, max_text: int = 20000,
         timeout: float = 10.0) -> list[Widget]:
    """The accessibility tree of the named applications (all when ``None``), flattened depth-first.

    Each :class:`Widget`'s ``parent`` indexes this list. ``with_text`` reads the text of text-like
    roles (:data:`TEXT_ROLES`, first ``max_text`` characters). Raises :class:`A11yUnavailable`
    when the tree cannot be read.
    """
    names = [apps] if isinstance(apps, str) else list(apps or [])
    query = {"apps": [a.lower() for a in names], "with_text": with_text, "showing_only": showing_only,
             "max_depth": max_depth, "max_nodes": max_nodes, "max_text": max_text,
             "text_roles": list(TEXT_ROLES)}
    env = dict(desktop.env)
    env.pop("NO_AT_BRIDGE", None)
    try:
        proc = subprocess.run([SYSTEM_PYTHON, "-c", _HELPER, json.dumps(query)], env=env, capture_output=True,
                              text=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise A11yUnavailable(f"{SYSTEM_PYTHON}: not found (install python3-gi and gir1.2-atspi-2.0)") from None
    except subprocess.TimeoutExpired:
        raise A11yUnavailable(f"the accessibility tree did not answer within {timeout:.0f} s") from None
    try:
        out = json.loads(proc.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        raise A11yUnavailable(f"accessibility helper failed (exit {proc.returncode}): "
                              f"{proc.stderr.strip()[-300:] or 'no output'}") from None
    if "error" in out:
        raise A11yUnavailable(f"accessibility helper: {out['error']}")
    return [Widget(app=n["app"], pid=n["pid"], role=n["role"], name=n["name"], x=n["box"][0], y=n["box"][1],
                   width=n["box"][2], height=n["box"][3], states=frozenset(n["states"]), text=n["text"],
                   depth=n["depth"], parent=n["parent"]) for n in out["nodes"]]


def _matches(w: Widget, role: str | Sequence[str] | None, name: str | re.Pattern[str] | None,
             name_contains: str | None) -> bool:
    if role is not None and w.role != role and (isinstance(role, str) or w.role not in role):
        return False
    if isinstance(name, re.Pattern):
        if not name.search(w.name):
            return False
    elif name is not None and w.name != name:
        return False
    return name_contains is None or name_contains.lower() in w.name.lower()


def select(widgets: Sequence[Widget], role: str | Sequence[str] | None = None,
           name: str | re.Pattern[str] | None = None, *, name_contains: str | None = None,
           within: tuple[int, int, int, int] | None = None, screen: tuple[int, int] | None = None,
           where: Callable[[Widget], bool] | None = None) -> list[Widget]:
    """Filter a tree: exact ``name`` (or a regex), ``name_contains`` (case-insensitive), a role or
    roles, centre inside ``within`` = ``(x0, y0, x1, y1)``, centre on a ``screen`` = ``(w, h)``."""
    out = []
    for w in widgets:
        if not _matches(w, role, name, name_contains):
            continue
        if within is not None:
            cx, cy = w.center
            if not (within[0] <= cx < within[2] and within[1] <= cy < within[3]):
                continue
        if screen is not None and not w.on_screen(*screen):
            continue
        if where is not None and not where(w):
            continue
        out.append(w)
    return out


def find_all(desktop: DesktopEnv, role: str | Sequence[str] | None = None,
             name: str | re.Pattern[str] | None = None, *, app: str | Sequence[str] | None = None,
             name_contains: str | None = None, within: tuple[int, int, int, int] | None = None,
             where: Callable[[Widget], bool] | None = None, with_text: bool = False) -> list[Widget]:
    """Every showing, on-screen widget that matches (see :func:`select`), in tree order; no waiting."""
    screen = (int(getattr(desktop, "width", 1 << 15)), int(getattr(desktop, "height", 1 << 15)))
    return select(tree(desktop, app, with_text=with_text), role, name, name_contains=name_contains,
                  within=within, screen=screen, where=where)


def find(desktop: DesktopEnv, role: str | Sequence[str] | None = None, name: str | re.Pattern[str] | None = None,
         *, app: str | Sequence[str] | None = None, name_contains: str | None = None,
         within: tuple[int, int, int, int] | None = None, where: Callable[[Widget], bool] | None = None,
         with_text: bool = False, timeout: float = 5.0, poll: float = 0.25,
         deadline: float | None = None) -> Widget:
    """The first showing, on-screen widget that matches, waiting up to ``timeout`` seconds for it.

    ``deadline`` (a ``time.monotonic()`` value) caps the wait further. Raises :class:`WidgetNotFound`
    naming the query when nothing matched in time.
    """
    end = time.monotonic() + timeout
    if deadline is not None:
        end = min(end, deadline)
    while True:
        found = find_all(desktop, role, name, app=app, name_contains=name_contains, within=within, where=where,
                         with_text=with_text)
        if found:
            return found[0]
        if time.monotonic() + poll > end:
            break
        time.sleep(poll)
    what = ", ".join(f"{k}={v!r}" for k, v in
                     (("role", role), ("name", name), ("name_contains", name_contains), ("app", app))
                     if v is not None)
    raise WidgetNotFound(f"no widget with {what or 'any properties'} appeared within {timeout:.1f} s")


def read_text(desktop: DesktopEnv, app: str, role: str | Sequence[str] = TEXT_ROLES, *,
              within: tuple[int, int, int, int] | None = None) -> list[str]:
    """The texts of an application's showing text-like widgets (e.g. a calculator's display)."""
    return [w.text or "" for w in find_all(desktop, role, app=app, within=within, with_text=True)]


_RANGE_HELPER = r"""
import json, sys
q = json.loads(sys.argv[1])
import gi
gi.require_version("Atspi", "2.0")
from gi.repository import Atspi
def walk(acc, depth):
    if depth > 40:
        return None
    try:
        if acc.get_role_name() == q["role"] and "showing" in [Atspi.StateType(v).value_nick
                                                              for v in acc.get_state_set().get_states()]:
            t = acc.get_text_iface()
            if t is not None:
                return t
        for i in range(acc.get_child_count()):
            c = acc.get_child_at_index(i)
            r = walk(c, depth + 1) if c is not None else None
            if r is not None:
                return r
    except Exception:
        return None
    return None
desktop = Atspi.get_desktop(0)
for i in range(desktop.get_child_count()):
    app = desktop.get_child_at_index(i)
    if app is None or (app.get_name() or "").lower() != q["app"]:
        continue
    t = walk(app, 0)
    if t is not None:
        text = t.get_text(0, min(t.get_character_count(), 100000))
        at = text.find(q["needle"])
        if at < 0:
            print(json.dumps({"error": "text not found"})); sys.exit(0)
        end = at + len(q["needle"])
        first = t.get_character_extents(at, Atspi.CoordType.SCREEN)
        last = t.get_character_extents(end - 1, Atspi.CoordType.SCREEN)
        print(json.dumps({"first": [first.x, first.y, first.width, first.height],
                          "last": [last.x, last.y, last.width, last.height]}))
        sys.exit(0)
print(json.dumps({"error": "no showing %s in %s" % (q["role"], q["app"])}))
"""


def text_span(desktop: DesktopEnv, app: str, role: str, needle: str,
              timeout: float = 10.0) -> tuple[tuple[int, int, int, int], tuple[int, int, int, int]]:
    """Screen boxes ``(x, y, w, h)`` of the first and last characters of ``needle`` in an app's
    first showing widget of ``role`` (e.g. the editor's text view): where a drag-select starts and ends.

    Raises :class:`WidgetNotFound` when the widget or the text is not there.
    """
    env = dict(desktop.env)
    env.pop("NO_AT_BRIDGE", None)
    query = {"app": app.lower(), "role": role, "needle": needle}
    try:
        proc = subprocess.run([SYSTEM_PYTHON, "-c", _RANGE_HELPER, json.dumps(query)], env=env, capture_output=True,
                              text=True, timeout=timeout, check=False)
        out = json.loads(proc.stdout.strip().splitlines()[-1])
    except (subprocess.TimeoutExpired, FileNotFoundError, json.JSONDecodeError, IndexError) as exc:
        raise A11yUnavailable(f"accessibility helper failed: {exc}") from None
    if "error" in out:
        raise WidgetNotFound(f"{needle!r} in {app}'s {role}: {out['error']}")
    return tuple(out["first"]), tuple(out["last"])  # type: ignore[return-value]
