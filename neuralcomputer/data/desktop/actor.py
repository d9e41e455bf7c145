"""The ``Actor``: a user's hands on a :class:`~neuralcomputer.data.desktop.xsession.Desktop`.

It injects input through XTest (python-xlib, in process: ~0.1 ms per event against ~3 ms for an
``xdotool`` call) and logs every raw event with a monotonic timestamp and every meta-action when it
starts, in the schema of :mod:`neuralcomputer.data.desktop.actions`. Pointer moves follow eased Bezier
paths (:func:`bezier_path`) at ``move_hz``, as a person's hand does.

Coordinates are pixels of the screen, x right, y down.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from neuralcomputer.data.desktop.actions import CHAR_KEYS
from neuralcomputer.data.desktop.xsession import Desktop
from neuralcomputer.errors import NCError


class ActorCancelled(Exception):
    """Raised inside a policy when the episode was stopped (time up, or the desktop died)."""


# --------------------------------------------------------------------------------------------------
# The actor

_MODIFIERS = {"ctrl": "Control_L", "shift": "Shift_L", "alt": "Alt_L", "super": "Super_L"}
_SCROLL_BUTTONS = {(0, -1): 4, (0, 1): 5, (-1, 0): 6, (1, 0): 7}  # X wheel buttons: up, down, left, right


def _ease(t: np.ndarray) -> np.ndarray:
    """Minimum-jerk profile (slow start, fast middle, slow end), as human reaching movements."""
    return t * t * t * (10 - 15 * t + 6 * t * t)


def bezier_path(start: tuple[float, float], end: tuple[float, float], steps: int,
                rng: np.random.Generator, curvature: float = 0.25) -> np.ndarray:
    """Points ``(steps, 2)`` along a cubic Bezier from ``start`` to ``end`` with eased timing.

    Control points sit at 1/3 and 2/3 of the way, pushed sideways by up to ``curvature`` times the
    distance, so paths bow like a hand's rather than run straight.
    """
    p0, p3 = np.asarray(start, float), np.asarray(end, float)
    d = p3 - p0
    normal = np.array([-d[1], d[0]])
    p1 = p0 + d / 3 + normal * rng.uniform(-curvature, curvature)
    p2 = p0 + 2 * d / 3 + normal * rng.uniform(-curvature, curvature)
    t = _ease(np.linspace(0.0, 1.0, max(steps, 1) + 1)[1:])[:, None]
    return (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t * t * p2 + t ** 3 * p3


class Actor:
    """Drives the pointer and keyboard of a :class:`Desktop` through XTest and logs what it did.

    ``events``: ``[(t, raw_event_dict), ...]``; ``metas``: ``[(t, meta_action_dict), ...]``, ``t`` from
    ``time.monotonic()`` taken *after* the X server processed the request (so a frame captured later
    already shows it). Meta-actions and raw events follow :mod:`neuralcomputer.data.desktop.actions`. Typed
    characters are logged as one key per character (``A``, not ``shift`` + ``a``): the keysym the
    user meant, in the raw encoder's vocabulary.

    All methods raise :class:`ActorCancelled` once :meth:`cancel` was called (time up, desktop died).
    """

    def __init__(self, desktop: Desktop, rng: np.random.Generator | None = None, move_hz: float = 60.0) -> None:
        from Xlib import display as xdisplay

        self.desktop = desktop
        self.width, self.height = desktop.width, desktop.height
        self.rng = rng if rng is not None else np.random.default_rng()
        self.move_hz = move_hz
        self.events: list[tuple[float, dict[str, Any]]] = []
        self.metas: list[tuple[float, dict[str, Any]]] = []
        self._cancel = threading.Event()
        self._x = xdisplay.Display(desktop.display)
        self._root = self._x.screen().root
        self._keycodes: dict[int, tuple[int, bool]] = {}
        reply = self._root.query_pointer()
        self.position = (int(reply.root_x), int(reply.root_y))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._x.close()

    # -- control -----------------------------------------------------------------------------------

    def cancel(self) -> None:
        """Stop the actor: the policy's current and next calls raise ActorCancelled."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def _sleep(self, seconds: float) -> None:
        if self._cancel.wait(max(0.0, seconds)):
            raise ActorCancelled()

    def _check(self) -> None:
        if self._cancel.is_set():
            raise ActorCancelled()

    # -- raw events --------------------------------------------------------------------------------

    def _log(self, event: dict[str, Any]) -> None:
        self._x.sync()  # the server has processed it before we stamp it
        self.events.append((time.monotonic(), event))

    def _meta(self, meta: dict[str, Any]) -> None:
        self._check()
        self.metas.append((time.monotonic(), meta))

    def clamp(self, x: float, y: float) -> tuple[int, int]:
        """A point inside the screen (XTest clamps too; logging the clamped point keeps logs true)."""
        return min(max(round(x), 0), self.width - 1), min(max(round(y), 0), self.height - 1)

    def raw_move(self, x: float, y: float) -> None:
        from Xlib import X
        from Xlib.ext import xtest

        x, y = self.clamp(x, y)
        xtest.fake_input(self._x, X.MotionNotify, x=x, y=y)
        self.position = (x, y)
        self._log({"type": "move", "x": x, "y": y})

    def raw_button(self, button: int, down: bool) -> None:
        from Xlib import X
        from Xlib.ext import xtest

        xtest.fake_input(self._x, X.ButtonPress if down else X.ButtonRelease, button)
        self._log({"type": "down" if down else "up", "button": button})

    def raw_key(self, key: str, down: bool) -> None:
        """Press or release ``key`` (a keysym name, a modifier name such as ``ctrl``, or one character)."""
        from Xlib import X
        from Xlib.ext import xtest

        keycode, shifted = self._keycode(key)
        if shifted and down:
            xtest.fake_input(self._x, X.KeyPress, self._keycode("Shift_L")[0])
        xtest.fake_input(self._x, X.KeyPress if down else X.KeyRelease, keycode)
        if shifted and not down:
            xtest.fake_input(self._x, X.KeyRelease, self._keycode("Shift_L")[0])
        self._log({"type": "key_down" if down else "key_up", "key": key})

    def _keycode(self, key: str) -> tuple[int, bool]:
        from Xlib import XK

        name = _MODIFIERS.get(key, CHAR_KEYS.get(key, key))
        keysym = XK.string_to_keysym(name)
        if not keysym and len(name) == 1 and ord(name) < 256:
            keysym = ord(name)  # Latin-1 keysyms equal the code point
        if not keysym:
            raise NCError(f"unknown key {key!r} (expected an X keysym name such as Return, F5, a, A)")
        if keysym not in self._keycodes:
            keycode = self._x.keysym_to_keycode(keysym)
            if not keycode:
                raise NCError(f"key {key!r} has no keycode in the X keyboard map")
            shifted = self._x.keycode_to_keysym(keycode, 0) != keysym and self._x.keycode_to_keysym(keycode, 1) == keysym
            self._keycodes[keysym] = (keycode, shifted)
        return self._keycodes[keysym]

    def _glide(self, x: float, y: float, duration: float) -> None:
        """Raw moves along a Bezier path to ``(x, y)`` over ``duration`` seconds (a jump when 0)."""
        target = self.clamp(x, y)
        distance = math.dist(self.position, target)
        if distance < 0.5:
            return
        steps = max(1, round(duration * self.move_hz))
        path = bezier_path(self.position, target, steps, self.rng)
        t0 = time.monotonic()
        for k, (px, py) in enumerate(path, 1):
            self.raw_move(px, py)
            self._sleep(t0 + k * duration / steps - time.monotonic())

    def default_duration(self, x: float, y: float) -> float:
        """A Fitts-law-like movement time: ~0.25 s plus 0.1 s per doubling of distance."""
        distance = math.dist(self.position, self.clamp(x, y))
        return 0.0 if distance < 1 else 0.2 + 0.08 * math.log2(1 + distance / 10)

    # -- meta-actions ------------------------------------------------------------------------------

    def move(self, x: float, y: float, duration: float | None = None) -> None:
        """Move the pointer to ``(x, y)`` along a human-like path (``duration`` seconds; default by distance)."""
        x, y = self.clamp(x, y)
        self._meta({"type": "move", "x": x, "y": y})
        self._glide(x, y, self.default_duration(x, y) if duration is None else duration)

    def click(self, x: float, y: float, button: int = 1, count: int = 1, duration: float | None = None) -> None:
        """Move to ``(x, y)`` and click ``count`` times (2: a double click) with ``button`` (1, 2, 3)."""
        x, y = self.clamp(x, y)
        if button not in (1, 2, 3) or count < 1:
            raise NCError(f"click needs button 1..3 and count >= 1, got {button}, {count}")
        self._meta({"type": "click", "x": x, "y": y, "button": button, "count": count})
        self._glide(x, y, self.default_duration(x, y) if duration is None else duration)
        for k in range(count):
            if k:
                self._sleep(self.rng.uniform(0.05, 0.09))  # well inside the 250 ms double-click time
            self.raw_button(button, True)
            self._sleep(self.rng.uniform(0.03, 0.07))
            self.raw_button(button, False)

    def drag(self, x0: float, y0: float, x: float, y: float, button: int = 1, duration: float | None = None) -> None:
        """Press at ``(x0, y0)``, move to ``(x, y)`` holding ``button``, release."""
        (x0, y0), (x, y) = self.clamp(x0, y0), self.clamp(x, y)
        self._meta({"type": "drag", "x0": x0, "y0": y0, "x": x, "y": y, "button": button})
        self._glide(x0, y0, self.default_duration(x0, y0) if duration is None else duration / 2)
        self.raw_button(button, True)
        self._sleep(0.08)  # toolkits start a drag only after the press was seen without motion
        self._glide(x, y, max(0.15, self.default_duration(x, y)) if duration is None else duration / 2)
        self._sleep(0.05)
        self.raw_button(button, False)

    def scroll(self, x: float, y: float, dx: int = 0, dy: int = 1, duration: float | None = None) -> None:
        """Wheel notches at ``(x, y)``: ``dy`` > 0 scrolls down, ``dx`` > 0 right (one raw event per notch)."""
        x, y = self.clamp(x, y)
        self._meta({"type": "scroll", "x": x, "y": y, "dx": int(dx), "dy": int(dy)})
        self._glide(x, y, self.default_duration(x, y) if duration is None else duration)
        from Xlib import X
        from Xlib.ext import xtest

        for axis, amount in ((0, dx), (1, dy)):
            sign = 1 if amount > 0 else -1
            for _ in range(abs(int(amount))):
                step = (sign, 0) if axis == 0 else (0, sign)
                button = _SCROLL_BUTTONS[step]
                xtest.fake_input(self._x, X.ButtonPress, button)
                xtest.fake_input(self._x, X.ButtonRelease, button)
                self._log({"type": "scroll", "dx": step[0], "dy": step[1]})
                self._sleep(self.rng.uniform(0.03, 0.06))

    def type(self, text: str, cps: float = 10.0) -> None:
        """Type ``text`` at about ``cps`` characters per second (jittered like a person)."""
        self._meta({"type": "type", "text": text})
        for ch in text:
            key = CHAR_KEYS.get(ch, ch)
            self.raw_key(key, True)
            self._sleep(self.rng.uniform(0.02, 0.05))
            self.raw_key(key, False)
            self._sleep(max(0.0, self.rng.normal(1.0 / cps, 0.25 / cps)))

    def key(self, keys: Sequence[str] | str) -> None:
        """Press a chord (e.g. ``["ctrl", "s"]`` or ``"Return"``): keys down in order, up in reverse."""
        keys = [keys] if isinstance(keys, str) else list(keys)
        if not keys:
            raise NCError("key needs at least one key name")
        for k in keys:
            self._keycode(k)  # fail before anything is pressed
        self._meta({"type": "key", "keys": keys})
        for k in keys:
            self.raw_key(k, True)
            self._sleep(0.02)
        for k in reversed(keys):
            self.raw_key(k, False)
            self._sleep(0.01)

    def wait(self, seconds: float) -> None:
        """Do nothing for ``seconds`` (not a meta-action: idle frames carry no action)."""
        self._sleep(seconds)

    def release_all(self) -> None:
        """Release buttons and modifiers (so a cancelled drag or chord leaves nothing held)."""
        from Xlib import X
        from Xlib.ext import xtest

        with contextlib.suppress(Exception):
            for button in (1, 2, 3):
                xtest.fake_input(self._x, X.ButtonRelease, button)
            for name in _MODIFIERS.values():
                xtest.fake_input(self._x, X.KeyRelease, self._keycode(name)[0])
            self._x.sync()
