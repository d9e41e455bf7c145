"""The web protocol's message checks (``ncomp serve``): what a client may send, validated before any
model work. Every check raises :class:`ProtocolError` with one line for the client; the server turns it
into an ``error`` message and a strike. The protocol itself is described in :mod:`~neuralcomputer.runtime.server`.
"""

from __future__ import annotations

import json
from typing import Any

from neuralcomputer.data.desktop.actions import META_ACTIONS, check_event, check_meta, meta_to_events
from neuralcomputer.errors import NCError
from neuralcomputer.runtime.computer import check_command

MAX_STEPS = 200  # sampling steps a client may ask for: beyond it one step would hold a worker for minutes
MAX_TEXT = 2000  # characters of a desktop "type" action (terminal commands: MAX_COMMAND_BYTES)
MAX_EVENTS = 512  # raw events in one (coalesced) desktop frame
MAX_META = 64


# ---------------------------------------------------------------------------------------------
# Message checking


class ProtocolError(Exception):
    """A message the server refuses: one line for the client, and a strike."""


def _int(value: Any, name: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ProtocolError(f"{name} must be an integer in {lo}..{hi}, got {value!r:.40}")
    return value


def _bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise ProtocolError(f"{name} must be true or false, got {value!r:.40}")
    return value


def _check_position(item: dict[str, Any], screen: tuple[int, int], where: str) -> None:
    w, h = screen
    for xk, yk in (("x", "y"), ("x0", "y0")):
        if xk in item and not (0 <= item[xk] < w and 0 <= item[yk] < h):
            raise ProtocolError(f"{where}: ({item[xk]}, {item[yk]}) is off the {w}x{h} screen")


def check_action(action: Any, kind: str, screen: tuple[int, int]) -> dict[str, Any]:
    """Structural checks of a step's action before it is queued (the model checks the rest)."""
    if not isinstance(action, dict) or not isinstance(action.get("type"), str):
        raise ProtocolError('step needs "action": an object with a "type"')
    if kind == "terminal":
        if action["type"] != "command":
            raise ProtocolError(f"unknown terminal action type {action['type']!r:.40} (expected 'command')")
        text = action.get("text")
        if not isinstance(text, str) or set(action) != {"type", "text"}:
            raise ProtocolError('a command is {"type": "command", "text": STRING}')
        try:  # the computer refuses these too, but only in the worker: catch them before they queue
            check_command(text)
        except NCError as exc:
            raise ProtocolError(str(exc)) from None
        return action
    try:
        if action["type"] == "frame":
            events, meta = action.get("events", []), action.get("meta", [])
            if not isinstance(events, list) or not isinstance(meta, list):
                raise ProtocolError("frame action: events and meta must be lists")
            if len(events) > MAX_EVENTS or len(meta) > MAX_META:
                raise ProtocolError(f"frame action: at most {MAX_EVENTS} events and {MAX_META} meta-actions")
            for i, event in enumerate(events):
                check_event(event, f"events[{i}]")
                _check_position(event, screen, f"events[{i}]")
            for i, m in enumerate(meta):
                check_meta(m, f"meta[{i}]")
                _check_position(m, screen, f"meta[{i}]")
            pointer = action.get("pointer")
            if pointer is not None:
                if (not isinstance(pointer, list) or len(pointer) != 2
                        or not all(isinstance(v, int) and not isinstance(v, bool) for v in pointer)):
                    raise ProtocolError("frame action: pointer must be [x, y] integers")
                _check_position({"x": pointer[0], "y": pointer[1]}, screen, "pointer")
            if set(action) - {"type", "events", "meta", "pointer"}:
                raise ProtocolError("frame action: only type, events, meta and pointer are allowed")
            return action
        if action["type"] not in META_ACTIONS:
            raise ProtocolError(f"unknown desktop action type {action['type']!r:.40} "
                                f"(expected frame or one of {', '.join(META_ACTIONS)})")
        check_meta(action, "action")
    except NCError as exc:
        raise ProtocolError(str(exc)) from None
    if action["type"] == "type" and len(action["text"]) > MAX_TEXT:
        raise ProtocolError(f"type action: at most {MAX_TEXT} characters")
    if action["type"] == "key" and len(action["keys"]) > 8:
        raise ProtocolError("key action: at most 8 keys in a chord")
    _check_position(action, screen, "action")
    return action


def as_frame(action: dict[str, Any]) -> dict[str, Any]:
    """A desktop action as one frame record (so several can merge into one frame)."""
    if action["type"] == "frame":
        return {"type": "frame", "events": list(action.get("events", [])), "meta": list(action.get("meta", [])),
                **({"pointer": action["pointer"]} if action.get("pointer") is not None else {})}
    frame: dict[str, Any] = {"type": "frame", "events": meta_to_events(action), "meta": [action]}
    if "x" in action:
        frame["pointer"] = [action["x"], action["y"]]
    return frame


def merge_frames(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Coalesce two desktop actions into one frame: events in order, the latest pointer.

    Past MAX_EVENTS the oldest pointer moves go first (the latest position is what matters)."""
    a, b = as_frame(old), as_frame(new)
    events = a["events"] + b["events"]
    while len(events) > MAX_EVENTS:
        moves = [i for i, e in enumerate(events) if e["type"] == "move"]
        if not moves:
            raise ProtocolError("too many input events while the model is busy; slow down")
        del events[moves[0]]
    merged = {"type": "frame", "events": events, "meta": (a["meta"] + b["meta"])[-MAX_META:]}
    pointer = b.get("pointer", a.get("pointer"))
    if pointer is not None:
        merged["pointer"] = pointer
    return merged


def check_settings(msg: dict[str, Any], kind: str) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    for name, value in msg.items():
        if name in ("op", "id"):
            continue
        if name == "steps":
            settings[name] = _int(value, name, 1, MAX_STEPS)
        elif name == "seed":
            settings[name] = _int(value, name, 0, 2**63 - 1)
        elif name in ("deterministic", "hybrid"):
            settings[name] = _bool(value, name)
        else:
            raise ProtocolError(f"unknown setting {name!r:.40} (expected steps, seed, deterministic, hybrid)")
    if settings.get("hybrid") and kind != "terminal":
        raise ProtocolError("hybrid mode is for terminal models only")
    if not settings:
        raise ProtocolError("settings needs at least one of steps, seed, deterministic, hybrid")
    return settings


_OP_FIELDS = {"open": {"model"}, "reset": set(), "step": {"action"}, "ping": {"t"}, "settings": None}


def parse_message(text: str) -> dict[str, Any]:
    """A client message: a JSON object with a known ``op``, an optional ``id`` and that op's fields."""
    try:
        msg = json.loads(text)
    except (ValueError, RecursionError):
        raise ProtocolError("not valid JSON") from None
    if not isinstance(msg, dict):
        raise ProtocolError("a message must be a JSON object with an op")
    op = msg.get("op")
    if not isinstance(op, str) or op not in _OP_FIELDS:  # a list or object op is unhashable: check the type first
        raise ProtocolError(f"unknown op {op!r:.40} (expected one of {', '.join(_OP_FIELDS)})")
    mid = msg.get("id")
    if mid is not None and (isinstance(mid, bool) or not isinstance(mid, int | str) or len(str(mid)) > 64):
        raise ProtocolError("id must be an integer or a string of at most 64 characters")
    allowed = _OP_FIELDS[op]
    if allowed is not None and (extra := set(msg) - allowed - {"op", "id"}):
        raise ProtocolError(f"op {op!r}: unexpected field(s) {', '.join(sorted(map(str, extra)))[:80]}")
    if op == "open" and not isinstance(msg.get("model"), str):
        raise ProtocolError('open needs "model": the name of a model from /api/models')
    return msg
