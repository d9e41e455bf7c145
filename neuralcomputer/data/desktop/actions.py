"""Desktop actions: the per-frame action log of desktop episodes and the ``ACTIONS.jsonl`` of rollouts.

One JSON object per frame, in frame order (``clips/<id>.actions.jsonl`` beside a desktop clip's
payload, and the file ``ncomp rollout --actions`` reads)::

    {"frame": 12, "t": 0.8, "pointer": [512, 384],
     "events": [{"type": "move", "x": 512, "y": 384}, {"type": "down", "button": 1}],
     "meta":   [{"type": "click", "x": 512, "y": 384, "button": 1, "count": 1}]}

``events`` are the raw input events sent to the X server during the frame's interval
``[t, t + 1/fps)`` (what XTest injected, in order); ``meta`` are the meta-actions that *started*
in that interval (what the policy meant: the paper's API-like actions). ``pointer`` is the pointer
position read back from the X server when the frame was captured; in a rollout file it may be
omitted and is then carried from the last ``move``/meta position.

Raw event types (keys are X keysym names as xdotool spells them: ``a``, ``A``, ``Return``,
``BackSpace``, ``ctrl``, ``shift``, ``alt``, ``super``, ``Left``, ``F5``, ...)::

    move(x, y)   down(button)   up(button)   scroll(dx, dy)   key_down(key)   key_up(key)

Meta-action types::

    move(x, y)   click(x, y, button, count)   drag(x0, y0, x, y, button)   scroll(x, y, dx, dy)
    type(text)   key(keys)          # keys: a chord, e.g. ["ctrl", "s"] or ["Return"]

Buttons: 1 left, 2 middle, 3 right. Coordinates: pixels of the captured frame, x right, y down.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from neuralcomputer.data.dataset import atomic_write_bytes
from neuralcomputer.errors import NCError

# field name -> expected type, per event / meta-action type
RAW_EVENTS: dict[str, dict[str, type]] = {
    "move": {"x": int, "y": int},
    "down": {"button": int},
    "up": {"button": int},
    "scroll": {"dx": int, "dy": int},
    "key_down": {"key": str},
    "key_up": {"key": str},
}
META_ACTIONS: dict[str, dict[str, type]] = {
    "move": {"x": int, "y": int},
    "click": {"x": int, "y": int, "button": int, "count": int},
    "drag": {"x0": int, "y0": int, "x": int, "y": int, "button": int},
    "scroll": {"x": int, "y": int, "dx": int, "dy": int},
    "type": {"text": str},
    "key": {"keys": list},
}
BUTTONS = (1, 2, 3)

# The keys the raw encoder has a slot for; any other keysym shares the last slot ("other").
MODIFIER_KEYS = ("ctrl", "shift", "alt", "super")
SPECIAL_KEYS = ("Return", "BackSpace", "Tab", "Escape", "space", "Delete", "Home", "End", "Page_Up",
                "Page_Down", "Left", "Right", "Up", "Down", *(f"F{i}" for i in range(1, 13)))
PRINTABLE_KEYS = tuple(chr(c) for c in range(33, 127))
KEY_VOCAB: tuple[str, ...] = (*MODIFIER_KEYS, *SPECIAL_KEYS, *PRINTABLE_KEYS, "other")
KEY_INDEX = {k: i for i, k in enumerate(KEY_VOCAB)}
_KEY_ALIASES = {"Control_L": "ctrl", "Control_R": "ctrl", "control": "ctrl", "Shift_L": "shift", "Shift_R": "shift",
                "Alt_L": "alt", "Alt_R": "alt", "Super_L": "super", "Super_R": "super", "KP_Enter": "Return"}


def canonical_key(key: str) -> str:
    """One name per key: left/right modifier keysyms and aliases fold to ``ctrl``, ``shift``, ``alt``, ..."""
    return _KEY_ALIASES.get(key, key)


def key_slot(key: str) -> int:
    """The raw encoder's slot for an X keysym name (``other`` for keys outside the vocabulary)."""
    return KEY_INDEX.get(canonical_key(key), KEY_INDEX["other"])


@dataclass
class FrameActions:
    """What happened during one frame interval: raw events, meta-actions started, pointer at capture."""

    frame: int
    t: float
    pointer: tuple[int, int]
    events: list[dict[str, Any]] = field(default_factory=list)
    meta: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["pointer"] = list(self.pointer)
        return d


_LIMITS = {"count": 3, "dx": 20, "dy": 20, "text": 1000, "keys": 8}  # per meta-action (see _check_fields)


def _check_fields(item: Any, kinds: dict[str, dict[str, type]], where: str, what: str) -> dict[str, Any]:
    if not isinstance(item, dict) or item.get("type") not in kinds:
        raise NCError(f"{where}: expected {'an' if what == 'event' else 'a'} {what} object with type one of {', '.join(kinds)}, got {item!r:.120}")
    for name, kind in kinds[item["type"]].items():
        value = item.get(name)
        if kind is int and isinstance(value, bool) or not isinstance(value, kind):
            raise NCError(f"{where}: {what} {item['type']!r} needs {name} as {kind.__name__}, got {value!r:.60}")
    if "button" in item and item["button"] not in BUTTONS:
        raise NCError(f"{where}: button must be 1, 2 or 3, got {item['button']}")
    if item["type"] == "key" and (not item["keys"] or not all(isinstance(k, str) and k for k in item["keys"])):
        raise NCError(f"{where}: meta-action 'key' needs keys as a non-empty list of key names")
    # Bounds: a meta-action expands into raw events (meta_to_events), so an unbounded count or notch
    # number would be an unbounded list; these are far beyond anything a person or a policy does.
    for name, limit in _LIMITS.items():
        value = item.get(name)
        if isinstance(value, int | str | list) and not isinstance(value, bool) and \
                (len(value) if isinstance(value, str | list) else abs(value)) > limit:
            raise NCError(f"{where}: {what} {item['type']!r}: {name} is limited to {limit}, got {value!r:.40}")
    if item["type"] == "click" and item["count"] < 1:
        raise NCError(f"{where}: click count must be at least 1, got {item['count']}")
    return item



def check_event(event: Any, where: str) -> dict[str, Any]:
    """Validate one raw event; raises NCError naming ``where`` on a malformed one."""
    return _check_fields(event, RAW_EVENTS, where, "event")


def check_meta(meta: Any, where: str) -> dict[str, Any]:
    """Validate one meta-action; raises NCError naming ``where`` on a malformed one."""
    return _check_fields(meta, META_ACTIONS, where, "meta-action")


def _meta_position(meta: dict[str, Any]) -> tuple[int, int] | None:
    return (meta["x"], meta["y"]) if "x" in meta else None


def parse_actions(lines: Iterable[str], source: str, fps: float = 15.0,
                  start: tuple[int, int] | None = None) -> list[FrameActions]:
    """Parse per-frame action records (one JSON object per line); errors name ``source:line``.

    Frames must be numbered 0, 1, 2, ... in order. A missing ``t`` is ``frame / fps``; a missing
    ``pointer`` is carried from the last move (raw or meta) or the previous frame, ``start`` at first.
    """
    frames: list[FrameActions] = []
    pointer = start
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{source}:{n}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise NCError(f"{where}: not a JSON object ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise NCError(f"{where}: expected a JSON object per frame, got {type(obj).__name__}")
        expected = len(frames)
        if obj.get("frame", expected) != expected:
            raise NCError(f"{where}: expected frame {expected}, got {obj.get('frame')!r}")
        events = obj.get("events", [])
        metas = obj.get("meta", [])
        if not isinstance(events, list) or not isinstance(metas, list):
            raise NCError(f"{where}: events and meta must be lists")
        events = [check_event(e, f"{where} event {i}") for i, e in enumerate(events)]
        metas = [check_meta(m, f"{where} meta {i}") for i, m in enumerate(metas)]
        for e in events:
            if e["type"] == "move":
                pointer = (e["x"], e["y"])
        for m in metas:
            pointer = _meta_position(m) or pointer
        if "pointer" in obj:
            p = obj["pointer"]
            if not (isinstance(p, list) and len(p) == 2 and all(isinstance(v, int | float) for v in p)):
                raise NCError(f"{where}: pointer must be [x, y], got {p!r:.60}")
            pointer = (round(p[0]), round(p[1]))
        if pointer is None:
            raise NCError(f"{where}: no pointer position yet (give 'pointer' or a move first)")
        t = obj.get("t", expected / fps)
        if not isinstance(t, int | float):
            raise NCError(f"{where}: t must be a number of seconds, got {t!r:.60}")
        frames.append(FrameActions(expected, float(t), pointer, events, metas))
    return frames


def read_actions(path: str | Path, fps: float = 15.0, start: tuple[int, int] | None = None) -> list[FrameActions]:
    """Read an actions file (see the module docstring); a malformed line is an error naming it."""
    path = Path(path)
    if not path.is_file():
        raise NCError(f"{path}: no such actions file")
    frames = parse_actions(path.read_text(encoding="utf-8").splitlines(), str(path), fps, start)
    if not frames:
        raise NCError(f"{path}: no frames (expected one JSON object per line)")
    return frames


def write_actions(path: str | Path, frames: Sequence[FrameActions]) -> None:
    """Write an actions file atomically (temporary name, then rename)."""
    text = "".join(json.dumps(f.to_json(), separators=(",", ":")) + "\n" for f in frames)
    atomic_write_bytes(Path(path), text.encode())


def action_times(frames: Sequence[FrameActions]) -> list[float]:
    """Times (seconds) of the frames where a meta-action starts: the "+15" protocol's action times."""
    return [f.t for f in frames if f.meta]


def step_actions(frames: Sequence[FrameActions], prev: int, cur: int) -> FrameActions:
    """What leads from frame ``prev`` to frame ``cur`` (a model step of ``cur - prev`` frames).

    Frame ``f``'s record holds the input sent after frame ``f`` was captured, so the step's events and
    meta-actions are those of records ``prev .. cur-1``; the pointer is the one read back at ``cur``.
    ``prev == cur`` (a window padded before the first frame) is a step with no input.
    """
    events = [e for f in frames[prev:cur] for e in f.events]
    meta = [m for f in frames[prev:cur] for m in f.meta]
    return FrameActions(cur, frames[cur].t, frames[cur].pointer, events, meta)


# Characters typed as a named keysym rather than themselves (the collector's Actor does the same).
CHAR_KEYS = {" ": "space", "\n": "Return", "\t": "Tab"}


def meta_to_events(meta: dict[str, Any]) -> list[dict[str, Any]]:
    """The raw events a meta-action sends, compressed into one frame interval.

    The collector spreads a click or a drag over several frames (a human-like glide); an interactive
    user's action arrives at once, so the runtime sends it within one frame: the same event kinds in
    the same order (move, press, release; keys down in order, up in reverse; one ``scroll`` per notch).
    """
    kind = meta["type"]
    if kind == "move":
        return [{"type": "move", "x": meta["x"], "y": meta["y"]}]
    if kind == "click":
        press = [{"type": "down", "button": meta["button"]}, {"type": "up", "button": meta["button"]}]
        return [{"type": "move", "x": meta["x"], "y": meta["y"]}, *press * meta["count"]]
    if kind == "drag":
        return [{"type": "move", "x": meta["x0"], "y": meta["y0"]}, {"type": "down", "button": meta["button"]},
                {"type": "move", "x": meta["x"], "y": meta["y"]}, {"type": "up", "button": meta["button"]}]
    if kind == "scroll":
        notches = [{"type": "scroll", "dx": (meta["dx"] > 0) - (meta["dx"] < 0), "dy": 0}] * abs(meta["dx"])
        notches += [{"type": "scroll", "dx": 0, "dy": (meta["dy"] > 0) - (meta["dy"] < 0)}] * abs(meta["dy"])
        return [{"type": "move", "x": meta["x"], "y": meta["y"]}, *notches]
    if kind == "type":
        keys = [CHAR_KEYS.get(ch, ch) for ch in meta["text"]]
        return [e for k in keys for e in ({"type": "key_down", "key": k}, {"type": "key_up", "key": k})]
    if kind == "key":
        return ([{"type": "key_down", "key": k} for k in meta["keys"]]
                + [{"type": "key_up", "key": k} for k in reversed(meta["keys"])])
    raise NCError(f"unknown meta-action type {kind!r}")
