"""Policies that drive a desktop episode: ``random-slow``, ``random-fast`` (and ``scripted``, registered
by its own module).

A policy is an object with a ``name`` and ``run(actor, desktop, rng, seconds)`` that issues meta-actions
through the :class:`~neuralcomputer.data.desktop.actor.Actor` until ``seconds`` have passed (or the actor is
cancelled, which raises :class:`~neuralcomputer.data.desktop.actor.ActorCancelled`; the collector treats that
as the normal end). It may also offer ``captions(metas) -> {"semantic", "regular", "detailed"}``;
otherwise :func:`default_captions` describes the logged meta-actions.

``POLICIES`` maps a name to a factory (no arguments). Other modules register more policies by adding
to it at import time; :func:`get_policy` imports the known plug-in modules first.

The random policies' figures (pointer px/frame at 15 FPS, meta-actions/s) are the paper's; the
parameters below were tuned by measuring episodes (``ncomp bench collect``).
"""

from __future__ import annotations

import importlib
import string
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from neuralcomputer.data.desktop.actor import Actor
from neuralcomputer.data.desktop.xsession import Desktop, Window
from neuralcomputer.errors import NCError


@runtime_checkable
class Policy(Protocol):
    """Drives an actor on a desktop for a number of seconds."""

    name: str

    def run(self, actor: Actor, desktop: Desktop, rng: np.random.Generator, seconds: float) -> None: ...


POLICIES: dict[str, Callable[[], Policy]] = {}
# Modules that register policies into POLICIES when imported (the purposeful "scripted" agent).
PLUGIN_MODULES = ("neuralcomputer.data.desktop.scripted",)


def register(name: str, factory: Callable[[], Policy]) -> None:
    """Add a policy factory under ``name`` (a later registration replaces an earlier one)."""
    POLICIES[name] = factory


def _load_plugins() -> None:
    for module in PLUGIN_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:  # the plug-in exists but is broken: say so
                raise


def get_policy(name: str) -> Policy:
    """A fresh policy by name; NCError naming the known ones when there is none."""
    _load_plugins()
    if name not in POLICIES:
        raise NCError(f"unknown or unavailable policy {name!r} (available: {', '.join(sorted(POLICIES))})")
    return POLICIES[name]()


# --------------------------------------------------------------------------------------------------
# Captions

def describe_meta(meta: dict[str, Any]) -> str:
    """One short phrase for a meta-action, e.g. ``double click at (120, 40)``."""
    kind = meta["type"]
    if kind == "move":
        return f"move to ({meta['x']}, {meta['y']})"
    if kind == "click":
        button = {1: "", 2: "middle ", 3: "right "}[meta["button"]]
        times = {1: "", 2: "double "}.get(meta["count"], f"{meta['count']}x ")
        return f"{times}{button}click at ({meta['x']}, {meta['y']})"
    if kind == "drag":
        return f"drag from ({meta['x0']}, {meta['y0']}) to ({meta['x']}, {meta['y']})"
    if kind == "scroll":
        way = "down" if meta["dy"] > 0 else "up" if meta["dy"] < 0 else "right" if meta["dx"] > 0 else "left"
        return f"scroll {way} at ({meta['x']}, {meta['y']})"
    if kind == "type":
        return f"type {meta['text']!r}"
    return "press " + "+".join(meta["keys"])


def default_captions(summary: str, metas: Sequence[dict[str, Any]], max_detailed: int = 40) -> dict[str, str]:
    """Three caption tiers from what was done: ``summary`` (semantic), counts (regular), the ordered
    meta-actions (detailed, the first ``max_detailed`` and a count of the rest)."""
    counts = Counter(m["type"] for m in metas)
    order = ("move", "click", "drag", "scroll", "type", "key")
    parts = [f"{counts[k]} {k if k != 'key' else 'key press'}{'es' if k == 'key' and counts[k] != 1 else ''}"
             f"{'s' if k != 'key' and counts[k] != 1 else ''}" for k in order if counts[k]]
    regular = f"{summary}: " + (", ".join(parts) if parts else "no actions") + "."
    phrases = [describe_meta(m) for m in metas[:max_detailed]]
    more = len(metas) - len(phrases)
    detailed = f"{summary}. " + ("; ".join(phrases) if phrases else "The pointer rests.")
    if more > 0:
        detailed += f"; and {more} more actions"
    return {"semantic": summary, "regular": regular, "detailed": detailed + ("" if detailed.endswith(".") else ".")}


# --------------------------------------------------------------------------------------------------
# Random policies

SAFE_KEYS: tuple[tuple[str, ...], ...] = (
    ("Return",), ("BackSpace",), ("Tab",), ("Escape",), ("Up",), ("Down",), ("Left",), ("Right",),
    ("Page_Up",), ("Page_Down",), ("Home",), ("End",), ("space",),
    ("ctrl", "a"), ("ctrl", "c"), ("ctrl", "v"), ("ctrl", "z"), ("ctrl", "f"), ("shift", "Tab"),
)
# Never pressed: they close windows or the session, lock, kill (xkill) or run arbitrary commands.
UNSAFE_CHORDS = ({"alt", "F4"}, {"ctrl", "alt", "Delete"}, {"ctrl", "alt", "Escape"}, {"alt", "F2"}, {"ctrl", "alt", "l"})
# Typed words are lowercase letters; these never appear (a terminal may have the focus when Return comes).
_DENY_WORDS = {"rm", "dd", "halt", "reboot", "poweroff", "shutdown", "init", "kill", "pkill", "killall", "mkfs",
               "sudo", "su", "exit", "logout", "telinit", "xkill"}


@dataclass(frozen=True)
class RandomParams:
    """Knobs of a random policy (times in seconds, distances in pixels)."""

    name: str
    summary: str
    weights: dict[str, float]         # action kind -> relative frequency
    pause: tuple[float, float]        # idle time after an action, uniform
    local_sigma: float                # std of a local target's offset from the pointer (0: uniform targets)
    far_candidates: int               # with uniform targets: pick the farthest of this many (longer moves)
    move_seconds: tuple[float, float]  # duration of a pointer glide, uniform
    cps: float                        # typing speed
    word_len: tuple[int, int]         # typed string length, inclusive


RANDOM_SLOW = RandomParams(
    name="random-slow",
    summary="slow random mouse and keyboard activity on an XFCE desktop",
    weights={"move": 0.34, "click": 0.14, "double": 0.03, "right": 0.03, "drag": 0.04, "scroll": 0.12,
             "type": 0.10, "key": 0.20},
    pause=(0.1, 0.42),
    local_sigma=17.0,
    far_candidates=1,
    move_seconds=(0.25, 0.6),
    cps=12.0,
    word_len=(1, 4),
)
RANDOM_FAST = RandomParams(
    name="random-fast",
    summary="fast random mouse and keyboard activity on an XFCE desktop",
    weights={"move": 0.50, "click": 0.15, "double": 0.03, "right": 0.02, "drag": 0.12, "scroll": 0.06,
             "type": 0.04, "key": 0.08},
    pause=(0.06, 0.18),
    local_sigma=0.0,
    far_candidates=6,
    move_seconds=(0.05, 0.12),
    cps=40.0,
    word_len=(1, 3),
)


class RandomPolicy:
    """Random meta-actions at human-like (slow) or frantic (fast) pace, kept to safe keys and targets."""

    def __init__(self, params: RandomParams) -> None:
        self.params = params
        self.name = params.name

    def captions(self, metas: Sequence[dict[str, Any]]) -> dict[str, str]:
        return default_captions(self.params.summary, metas)

    # -- targets -----------------------------------------------------------------------------------

    def _target(self, actor: Actor, rng: np.random.Generator) -> tuple[int, int]:
        p = self.params
        w, h = actor.width, actor.height
        if p.local_sigma > 0:
            x, y = np.asarray(actor.position, float) + rng.normal(0.0, p.local_sigma, 2)
            # reflect at the edges instead of piling up against them
            x = -x if x < 0 else 2 * (w - 1) - x if x > w - 1 else x
            y = -y if y < 0 else 2 * (h - 1) - y if y > h - 1 else y
            return actor.clamp(x, y)
        candidates = rng.uniform((0, 0), (w - 1, h - 1), size=(p.far_candidates, 2))
        far = candidates[np.argmax(np.hypot(*(candidates - actor.position).T))]
        return actor.clamp(*far)

    @staticmethod
    def _on_dock(docks: list[Window], x: int, y: int) -> bool:
        return any(d.contains(x, y) for d in docks)

    def _word(self, rng: np.random.Generator) -> str:
        lo, hi = self.params.word_len
        while True:
            n = int(rng.integers(lo, hi + 1))
            word = "".join(rng.choice(list(string.ascii_lowercase), n))
            if word not in _DENY_WORDS:
                return word

    # -- the loop ----------------------------------------------------------------------------------

    def run(self, actor: Actor, desktop: Desktop, rng: np.random.Generator, seconds: float) -> None:
        p = self.params
        kinds = list(p.weights)
        probs = np.asarray([p.weights[k] for k in kinds], float)
        probs /= probs.sum()
        # The panel's geometry from the X server: right-clicks stay off it (its context menu has
        # "Log Out"; the profile has no log-out buttons, and xfce4-session-logout is a no-op shim).
        docks = [w for w in desktop.windows() if w.type == "dock"]
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not actor.cancelled:
            kind = kinds[int(rng.choice(len(kinds), p=probs))]
            glide = float(rng.uniform(*p.move_seconds))
            x, y = self._target(actor, rng)
            if kind == "move":
                actor.move(x, y, duration=glide)
            elif kind in ("click", "double"):
                actor.click(x, y, button=1, count=2 if kind == "double" else 1, duration=glide)
            elif kind == "right":
                for _ in range(20):
                    if not self._on_dock(docks, x, y):
                        break
                    x, y = self._target(actor, rng)
                if not self._on_dock(docks, x, y):
                    actor.click(x, y, button=3, duration=glide)
            elif kind == "drag":
                x1, y1 = self._target(actor, rng) if p.local_sigma else (x, y)
                if p.local_sigma:  # a short drag starting at the pointer
                    x, y = actor.position
                actor.drag(x, y, x1, y1, duration=2 * glide)
            elif kind == "scroll":
                amount = int(rng.integers(1, 4)) * (1 if rng.random() < 0.6 else -1)
                dx, dy = (amount, 0) if rng.random() < 0.15 else (0, amount)
                actor.scroll(x, y, dx, dy, duration=glide)
            elif kind == "type":
                actor.type(self._word(rng), cps=p.cps)
            else:
                keys = SAFE_KEYS[int(rng.integers(len(SAFE_KEYS)))]
                assert set(keys) not in UNSAFE_CHORDS
                actor.key(list(keys))
            actor.wait(float(rng.uniform(*p.pause)))


register("random-slow", lambda: RandomPolicy(RANDOM_SLOW))
register("random-fast", lambda: RandomPolicy(RANDOM_FAST))


# --------------------------------------------------------------------------------------------------
# Measured figures of an episode

def pointer_speed(pointer: np.ndarray) -> float:
    """Mean pointer displacement per frame (px) of a ``(T, 2)`` read-back pointer track."""
    pointer = np.asarray(pointer, float)
    if len(pointer) < 2:
        return 0.0
    return float(np.mean(np.hypot(*np.diff(pointer, axis=0).T)))


def actions_per_second(n_meta: int, frames: int, fps: float) -> float:
    """Meta-actions per second of an episode of ``frames`` frames at ``fps``."""
    return n_meta / (frames / fps) if frames else 0.0
