"""Plug an external computer-use agent (a model behind an API) into desktop collection.

The agent sees what a person sees and answers with meta-actions in the schema of
:mod:`neuralcomputer.data.desktop.actions`; :class:`AgentPolicy` runs it through the
:class:`~neuralcomputer.data.desktop.actor.Actor`, so its episodes are logged, cursor-tracked and
written exactly like the built-in policies'. This module never touches the network: the client
you pass in owns the connection (and its keys, retries and rate limits).

The loop, per task: take a screenshot (PNG bytes), call
``client.next_actions(screenshot_png, task, history)``, validate **every** returned action
(:func:`validate_reply`: the schema via ``actions.check_meta``, coordinates on the screen, no
session-ending chords), then perform them; stop at ``"done"``, after ``max_steps`` calls, or when
the episode's time is up. A malformed reply is never half-executed: with ``strict=False`` (the
default) the task ends and the error is logged in :attr:`AgentPolicy.log`; with ``strict=True``
it raises :class:`AgentError` naming the task, the step and the offending action.

Worked example (a client for some hosted model; only the ``next_actions`` signature matters)::

    import base64, json
    from neuralcomputer.data.desktop.agent import AgentPolicy
    from neuralcomputer.data.desktop.collect import record_episode

    class MyModelClient:
        def __init__(self, session):          # e.g. a requests.Session with your API key
            self.session = session

        def next_actions(self, screenshot_png, task, history):
            reply = self.session.post("https://example.invalid/v1/act", json={
                "task": task,
                "history": history,           # the meta-actions already performed for this task
                "screenshot": base64.b64encode(screenshot_png).decode(),
            }, timeout=60).json()
            # the model answers e.g. {"actions": [{"type": "click", "x": 40, "y": 12,
            #                                      "button": 1, "count": 1}]} or {"done": true}
            return "done" if reply.get("done") else reply["actions"]

    policy = AgentPolicy(MyModelClient(session), tasks=["Open a terminal and run ls"])
    episode = record_episode("agent", seed=0, index=0, seconds=60, policy=policy)
    print(policy.log)  # one record per task: steps, actions, done / error

Replies use the meta-action types ``move(x, y)``, ``click(x, y, button, count)``,
``drag(x0, y0, x, y, button)``, ``scroll(x, y, dx, dy)``, ``type(text)``, ``key(keys)``;
coordinates are screen pixels of the screenshot (x right, y down). :class:`ReplayClient` replays a
fixed list of replies: handy to check a pipeline without any model.
"""

from __future__ import annotations

import io
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
from PIL import Image

from neuralcomputer.data.desktop.actions import canonical_key, check_meta
from neuralcomputer.data.desktop.actor import ActorCancelled
from neuralcomputer.data.desktop.policies import UNSAFE_CHORDS, default_captions
from neuralcomputer.errors import NCError

Reply = list[dict[str, Any]] | Literal["done"]


def _fold(keys: Any) -> set[str]:
    """Key names compared as the X server sees them: aliases folded, named keys case-blind."""
    return {k.lower() if len(k) > 1 else k for k in map(canonical_key, keys)}


class AgentError(NCError):
    """An agent's reply could not be used (malformed, off-screen, forbidden) or its client failed."""


@runtime_checkable
class ComputerUseClient(Protocol):
    """A computer-use agent: from the screen, the task and what it did so far, the next actions."""

    def next_actions(self, screenshot_png: bytes, task: str, history: Sequence[dict[str, Any]]) -> Reply:
        """Meta-actions to perform next (a list, possibly empty: look again), or ``"done"``."""
        ...


class ReplayClient:
    """A client that replays fixed replies in order, then says ``"done"``; records what it was shown."""

    def __init__(self, replies: Sequence[Reply]) -> None:
        self.replies = list(replies)
        self.calls: list[tuple[str, int, int]] = []  # (task, len(history), len(png))

    def next_actions(self, screenshot_png: bytes, task: str, history: Sequence[dict[str, Any]]) -> Reply:
        self.calls.append((task, len(history), len(screenshot_png)))
        return self.replies.pop(0) if self.replies else "done"


def encode_png(frame: np.ndarray) -> bytes:
    """An ``(H, W, 3)`` uint8 frame as PNG bytes (lossless: the agent must be able to read text)."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(frame, dtype=np.uint8)).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def validate_reply(reply: Any, width: int, height: int, where: str) -> Reply:
    """Check a client's reply completely before anything is performed; :class:`AgentError` otherwise."""
    if reply == "done":
        return "done"
    if not isinstance(reply, list):
        raise AgentError(f"{where}: expected a list of meta-actions or 'done', got {type(reply).__name__}")
    out = []
    for i, action in enumerate(reply):
        here = f"{where} action {i}"
        try:
            action = check_meta(action, here)
        except NCError as exc:
            raise AgentError(str(exc)) from None
        points = [(action["x"], action["y"])] if "x" in action else []
        if action["type"] == "drag":
            points.append((action["x0"], action["y0"]))
        for x, y in points:
            if not (0 <= x < width and 0 <= y < height):
                raise AgentError(f"{here}: point ({x}, {y}) is off the {width}x{height} screen")
        if action["type"] == "click" and not 1 <= action["count"] <= 3:
            raise AgentError(f"{here}: click count must be 1..3, got {action['count']}")
        # any chord that *contains* an unsafe one (Alt_L+F4, shift+alt+F4) is refused too
        if action["type"] == "key" and any(_fold(chord) <= _fold(action["keys"]) for chord in UNSAFE_CHORDS):
            raise AgentError(f"{here}: the chord {'+'.join(action['keys'])} is not allowed (it can end the session)")
        out.append(action)
    return out


def perform(actor: Any, action: dict[str, Any]) -> None:
    """Perform one validated meta-action through the actor."""
    kind = action["type"]
    if kind == "move":
        actor.move(action["x"], action["y"])
    elif kind == "click":
        actor.click(action["x"], action["y"], button=action["button"], count=action["count"])
    elif kind == "drag":
        actor.drag(action["x0"], action["y0"], action["x"], action["y"], button=action["button"])
    elif kind == "scroll":
        actor.scroll(action["x"], action["y"], action["dx"], action["dy"])
    elif kind == "type":
        actor.type(action["text"])
    else:
        actor.key(list(action["keys"]))


@dataclass
class AgentPolicy:
    """Runs a :class:`ComputerUseClient` on the desktop, task after task, validating every action.

    ``tasks``: instructions given to the agent in order (each until ``"done"`` or ``max_steps``
    replies); ``settle``: seconds to wait after performing a reply, so the next screenshot shows its
    effect. :attr:`log` gets one record per task: ``{"task", "steps", "actions", "done", "error"}``.
    """

    client: ComputerUseClient
    tasks: Sequence[str]
    max_steps: int = 20
    settle: float = 0.5
    strict: bool = False
    name: str = "agent"
    log: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not isinstance(self.client, ComputerUseClient):
            raise AgentError("the client needs a next_actions(screenshot_png, task, history) method")
        if not self.tasks or not all(isinstance(t, str) and t.strip() for t in self.tasks):
            raise AgentError("AgentPolicy needs at least one task, each a non-empty instruction")

    def run(self, actor: Any, desktop: Any, rng: np.random.Generator, seconds: float) -> None:
        """Give the agent its tasks in order until they are done or ``seconds`` have passed."""
        end = time.monotonic() + seconds
        for task in self.tasks:
            if time.monotonic() >= end:
                break
            record: dict[str, Any] = {"task": task, "steps": 0, "actions": 0, "done": False, "error": None}
            self.log.append(record)
            history: list[dict[str, Any]] = []
            try:
                for step in range(self.max_steps):
                    if time.monotonic() >= end:
                        record["error"] = "out of time"
                        break
                    where = f"task {len(self.log) - 1} ({task[:40]!r}) step {step}"
                    png = encode_png(desktop.screenshot())
                    try:
                        raw = self.client.next_actions(png, task, list(history))
                    except Exception as exc:  # the client is foreign code: report, never crash
                        raise AgentError(f"{where}: the client failed: {type(exc).__name__}: {exc}") from None
                    record["steps"] = step + 1
                    reply = validate_reply(raw, int(desktop.width), int(desktop.height), where)
                    if reply == "done":
                        record["done"] = True
                        break
                    for action in reply:
                        perform(actor, action)
                        history.append(action)
                        record["actions"] += 1
                    actor.wait(self.settle)
                else:
                    record["error"] = f"not done after {self.max_steps} steps"
            except AgentError as exc:
                record["error"] = str(exc)
                if self.strict:
                    raise
            except ActorCancelled:
                record["error"] = "cut by the end of the episode"
                raise

    def captions(self, metas: list[dict[str, Any]]) -> dict[str, str]:
        """Captions naming the agent's tasks, then its meta-actions."""
        tasks = "; ".join(r["task"] for r in self.log) or "no task"
        return default_captions(f"an agent working on an XFCE desktop: {tasks}", metas)
