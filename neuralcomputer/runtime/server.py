"""``ncomp serve``: a FastAPI app that puts neural computers in the browser.

One page (``static/``), ``GET /api/models``, and one websocket ``/ws`` per browser tab. Each
websocket is a *session*: it opens a model (one :class:`NeuralComputer` of its own), then resets and
steps it; each frame goes to the browser as soon as the step hands it over. ``NeuralComputer.step``
hands a step's frames over once it has generated them all (a terminal clip is generated jointly; a
desktop step is one frame), so the first frame of a step arrives when the step's compute is done.

Protocol (version 1). Client -> server: JSON text messages, each an object with an ``op`` and an
optional ``id`` (an int or a short string, echoed in the replies to that message)::

    {"op": "open", "model": NAME}                       load the model for this session, reset it
    {"op": "reset"}                                     back to the first screen
    {"op": "step", "action": {...}}                     one command (terminal) or action (desktop)
    {"op": "settings", "steps": n, "seed": s, "deterministic": b, "hybrid": b}   any subset
    {"op": "ping", "t": ANY}                            answered at once, even during a step

Server -> client: JSON text messages with a ``type``, and binary messages. Every generated frame is
one message, in generation order, sent as soon as the model hands it over: a binary message holding
the frame as a PNG image of the model's frame size (lossless, so terminal glyphs survive; zlib level 1,
so encoding costs little), or the JSON ``{"type": "same"}`` when the frame equals the one before it
(models hold frames: a terminal clip samples every 5th frame, a desktop step repeats its frame
``frame_stride`` times), which saves encoding and bandwidth without hiding the frame rate.

The JSON messages::

    hello     {protocol, models, limits}                 first message of every connection
    queued    {position}                                 every slot is taken; position 1 is next
    admitted  {}                                         a slot is ours: ``open`` can run
    started   {op, id}                                   the model started working on this op
    same      {}                                         one frame, equal to the previous one
    ready     {model, kind, size: [H, W], screen: [W, H], fps, settings}   after open (one frame precedes it)
    reset     {id, frames: 1, latency_s}                 after reset (its frame precedes it)
    step      {id, frames, record, latency_s, compute_s, first_frame_s, fps, coalesced}   after its frames;
              record: the computer's step record (terminal hybrid: record.engine.screen_text is the
              sandboxed shell's real screen); coalesced: how many desktop inputs this frame carries
    settings  {id, settings}
    pong      {id, t}
    error     {id, error, fatal}                         one clear line; fatal ones close the session
    closed    {reason}                                   sent right before the server closes the socket

Limits: at most ``max_sessions`` sessions hold a model at once; more connections wait in a bounded
FIFO queue (told their position), and beyond it are refused (close code 1013). A session idle for
``idle_timeout_s`` is closed; only use counts as activity: ``open`` and ``step`` (a reset, a setting
or a ping before each timeout would otherwise hold a slot for ever, doing nothing). A session that has
held its slot for ``max_session_s`` gives it up before its next op while another connection waits
(alone it may go on), so even steady use cannot keep others out for ever. Oversize or malformed messages, unknown ops or
action types, wrong field types and floods (a token bucket per connection) get an ``error`` and a
strike; strikes decay with time, and a session that collects ``max_strikes`` is dropped (1008). A text
frame that is not UTF-8 closes its connection (1007, uvicorn's doing) and is logged in one line.

Threads: model work (load, a desktop reset, the model's part of a step) runs in one shared thread pool
with ``workers`` threads (default 1: on a CPU one step already uses every core, and PyTorch's
deterministic-algorithms switch is process-wide). What needs no model runs beside it, in a pool of
``max_sessions`` threads: a step's plan (in hybrid mode the command runs in its sandbox, for up to its
wall-clock limit), settings (turning hybrid on starts a sandbox), a terminal reset and closing a
session's computer; so a command's wall time never holds up other sessions. A session runs one op at a time; while a desktop step runs, new desktop
actions merge into one pending frame record (their raw events concatenated), so input never queues up
without bound; terminal commands queue up to ``max_pending``. A browser that goes away mid-step does
not stop the model: the step runs to its end in its pool thread, its frames not yet sent are dropped
(the frame callback raises), then the session is closed; its slot stays taken until then, so clients
that vanish mid-step cannot start more model work than ``max_sessions`` allows.

Weights: each model is loaded once (:class:`ModelPool`); a session's computer wraps a shallow copy of
the loaded pipeline, so sessions share the network's weights (read-only at inference) but nothing
else: screen, latents, history, settings and the hybrid sandbox are per session. Loading per session
would multiply memory by ``max_sessions`` (a 14B model!) and make ``open`` wait on the disk; the
``shared_weights=False`` switch does exactly that, for a backend that ever keeps state on itself.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import copy
import hmac
import io
import json
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from PIL import Image
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from neuralcomputer.errors import NCError
from neuralcomputer.eval.report import jsonable  # NaN/inf are not JSON a browser parses
from neuralcomputer.runtime.protocol import (
    ProtocolError,
    check_action,
    check_settings,
    merge_frames,
    parse_message,
)

log = logging.getLogger(__name__)

PROTOCOL = 1
STATIC = Path(__file__).parent / "static"
# Host header names of loopback: an IPv6 literal keeps its brackets there ("Host: [::1]:8765"), and
# that is how TrustedHostMiddleware compares it.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
TOKEN_COOKIE = "ncomp_token"
STRIKE_DECAY_S = 10.0  # one strike forgiven per this many seconds


@dataclass(frozen=True)
class ServerLimits:
    """How much one server and one session may take. Every bound the server enforces lives here."""

    max_sessions: int = 4
    max_queue: int = 8
    queue_timeout_s: float = 600.0
    idle_timeout_s: float = 300.0
    max_message_bytes: int = 64 * 1024
    rate_per_s: float = 30.0  # sustained messages per second per connection (desktop input is ~fps)
    burst: int = 60
    max_strikes: int = 10
    max_pending: int = 8  # ops waiting behind the running one, per session
    workers: int = 1  # threads of the model pool that all sessions share
    max_session_s: float = 3600.0  # then a session gives its slot to a waiting connection

    def public(self) -> dict[str, Any]:
        return {"max_sessions": self.max_sessions, "max_queue": self.max_queue, "idle_timeout_s": self.idle_timeout_s,
                "max_session_s": self.max_session_s,
                "max_message_bytes": self.max_message_bytes, "rate_per_s": self.rate_per_s, "burst": self.burst,
                "max_pending": self.max_pending}


@dataclass(frozen=True)
class ModelInfo:
    """What the page needs to know about a model before opening it."""

    name: str
    path: Path
    kind: str
    size: tuple[int, int]  # (H, W) of frames
    screen: tuple[int, int]  # (W, H) of action coordinates
    fps: float

    def public(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "size": list(self.size), "screen": list(self.screen),
                "fps": self.fps}


class ModelPool:
    """The served models: each loaded once, then one cheap :class:`NeuralComputer` per session.

    With ``shared_weights`` (the default) a session's computer wraps a shallow copy of the loaded
    backend (pipeline or rollout): the network's weights are shared (read-only at inference), while the
    per-session settings (steps, deterministic) and all state (screen, latents, history, sandbox) are the
    session's own. One copy of the weights however many sessions, and ``open`` costs no disk reads.
    Without it every session loads the model from disk (isolation by construction, memory x sessions).
    """

    def __init__(self, models: dict[str, Path], *, shared_weights: bool = True) -> None:
        from neuralcomputer.runtime.computer import NeuralComputer

        self._cls = NeuralComputer
        self.shared_weights = shared_weights
        self.templates: dict[str, Any] = {}
        self.infos: dict[str, ModelInfo] = {}
        for name, path in models.items():
            try:
                computer = NeuralComputer.load(path)  # NCError naming the path on a missing one
                computer.reset()  # fail now, not in a browser, on a model without a first screen
            except NCError as exc:
                raise NCError(f"model {name!r}: {exc}") from None
            except (OSError, ValueError, KeyError, RuntimeError) as exc:  # corrupt config or weights
                raise NCError(f"model {name!r}: cannot load {path} ({type(exc).__name__}: {exc})") from None
            self.templates[name] = computer
            h, w = (int(v) for v in computer.size)
            screen = (int(computer.screen[0]), int(computer.screen[1]))
            self.infos[name] = ModelInfo(name, Path(path), computer.kind, (h, w), screen, float(computer.fps))

    def new_computer(self, name: str) -> Any:
        """A fresh computer for one session (not yet reset)."""
        template = self.templates[name]
        if not self.shared_weights:
            return self._cls.load(self.infos[name].path)
        return self._cls(copy.copy(template.backend), model_dir=template.model_dir)

    def close(self) -> None:
        """Release the loaded models' resources."""
        for computer in self.templates.values():
            computer.close()


def encode_png(frame: np.ndarray) -> bytes:
    """One ``(H, W, 3)`` uint8 frame as PNG bytes (zlib level 1: lossless and fast to write)."""
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(frame, dtype=np.uint8)).save(out, format="PNG", compress_level=1)
    return out.getvalue()


class _OneLineClientErrors(logging.Filter):
    """Drops the traceback uvicorn logs with each invalid UTF-8 text frame a client sends
    (``logger.exception``): a client's bad frame is worth one line, and must not let it fill the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], UnicodeDecodeError) \
                and record.getMessage().startswith("Invalid UTF-8"):
            record.exc_info, record.exc_text = None, None
        return True


def quiet_client_errors() -> None:
    """Log what clients get wrong in one line each (uvicorn's ``uvicorn.error`` logger); idempotent."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _OneLineClientErrors) for f in logger.filters):
        logger.addFilter(_OneLineClientErrors())


# ---------------------------------------------------------------------------------------------
# Access control: token, Origin, Host


class AccessMiddleware:
    """Refuses requests without the token (when one is set) and cross-site websockets.

    The token may come as ``?token=``, ``Authorization: Bearer``, or the cookie that ``GET /?token=``
    sets (so the page's own scripts and styles load without it in their URLs). A websocket whose
    ``Origin`` is not this server is refused even without a token: otherwise any web page the user
    visits could drive the local server (cross-site websocket hijacking).
    """

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token

    def _token_ok(self, scope: Scope, headers: dict[str, str]) -> bool:
        if self.token is None:
            return True
        offered = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [])
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            offered.append(auth[7:].strip())
        cookie = SimpleCookie()
        with contextlib.suppress(Exception):
            cookie.load(headers.get("cookie", ""))
        if TOKEN_COOKIE in cookie:
            offered.append(cookie[TOKEN_COOKIE].value)
        return any(hmac.compare_digest(t.encode(), self.token.encode()) for t in offered)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        why = None
        if not self._token_ok(scope, headers):
            why = "missing or wrong token"
        elif (scope["type"] == "websocket" and "origin" in headers
              and urlsplit(headers["origin"]).netloc.lower() != headers.get("host", "").lower()):
            why = "cross-origin websocket"
        if why is None:
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 1008, "reason": why})
        else:
            await JSONResponse({"error": why}, status_code=401 if "token" in why else 403)(scope, receive, send)


# ---------------------------------------------------------------------------------------------
# Session slots: max_sessions at once, a bounded FIFO queue behind them


class ServerFull(Exception):
    """Every slot is taken and the queue is full."""


@dataclass(eq=False)
class _Waiter:
    granted: asyncio.Future
    moved: asyncio.Event = field(default_factory=asyncio.Event)


class SessionSlots:
    """At most ``size`` holders; later arrivals wait in FIFO order (at most ``max_queue`` of them)."""

    def __init__(self, size: int, max_queue: int) -> None:
        self.size, self.max_queue = size, max_queue
        self.active = 0
        self.waiters: deque[_Waiter] = deque()

    def position(self, waiter: _Waiter) -> int:
        return self.waiters.index(waiter) + 1 if waiter in self.waiters else 0

    def join(self) -> _Waiter | None:
        """Take a slot now (None) or join the queue (a waiter); raises ServerFull when the queue is full."""
        if self.active < self.size and not self.waiters:
            self.active += 1
            return None
        if len(self.waiters) >= self.max_queue:
            raise ServerFull(f"server busy: {self.active} sessions running and {len(self.waiters)} waiting")
        waiter = _Waiter(asyncio.get_running_loop().create_future())
        self.waiters.append(waiter)
        return waiter

    def leave(self, waiter: _Waiter) -> None:
        """A waiter gives up (disconnect, timeout); if it had just been granted, pass the slot on."""
        if waiter in self.waiters:
            self.waiters.remove(waiter)
            self._moved()
        elif waiter.granted.done() and not waiter.granted.cancelled():
            self.release()

    def release(self) -> None:
        """A holder is done: hand its slot to the first waiter, or free it."""
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.granted.done():
                waiter.granted.set_result(None)
                self._moved()
                return
        self.active -= 1

    def _moved(self) -> None:
        for waiter in self.waiters:
            waiter.moved.set()


class TokenBucket:
    """``rate`` messages per second sustained, ``burst`` at once."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self.level, self.t = float(burst), time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.level = min(self.burst, self.level + (now - self.t) * self.rate)
        self.t = now
        if self.level >= 1:
            self.level -= 1
            return True
        return False


# ---------------------------------------------------------------------------------------------
# One websocket session


class _Gone(Exception):
    """The client is gone (or the session was dropped): stop every task of the session."""


class _Cancelled(Exception):
    """Raised by a step's frame callback once its session has ended: the frames not yet sent are dropped."""


@dataclass
class _Op:
    msg: dict[str, Any]
    received: float
    coalesced: int = 1


@dataclass
class _Server:
    pool: ModelPool
    limits: ServerLimits
    executor: concurrent.futures.ThreadPoolExecutor  # model work
    engines: concurrent.futures.ThreadPoolExecutor  # work without the model (sandboxes, settings)
    slots: SessionSlots


_USE = ("open", "step")  # the ops that count as activity: what a user does, not what keeps a slot warm


class Session:
    """One websocket: a slot, at most one NeuralComputer, and the ops the client sent it.

    Three tasks: the reader checks each message and queues ops (pings are answered at once), the
    worker runs queued ops one at a time in the thread pool and streams their frames, the watchdog
    closes the session when idle. Whichever ends first ends the session.
    """

    def __init__(self, ws: WebSocket, server: _Server) -> None:
        self.ws, self.server, self.limits = ws, server, server.limits
        self.loop = asyncio.get_running_loop()
        self.send_lock = asyncio.Lock()
        self.bucket = TokenBucket(self.limits.rate_per_s, self.limits.burst)
        self.strikes, self.strike_t, self.last_quiet_error = 0.0, time.monotonic(), 0.0
        self.pending: deque[_Op] = deque()
        self.wakeup = asyncio.Event()
        self.admitted = False
        self.target: ModelInfo | None = None  # the model the queued ops are meant for
        self.info: ModelInfo | None = None  # the model open now
        self.computer: Any = None
        self.busy: str | None = None  # the op running now
        self.inflight: concurrent.futures.Future | None = None
        self.ended = threading.Event()  # also read by frame callbacks in worker threads
        self.last_activity = time.monotonic()
        self.admitted_at = 0.0

    # -- sending
    async def send_json(self, message: dict[str, Any]) -> None:
        await self._send({"type": "websocket.send", "text": json.dumps(jsonable(message), default=str)})

    async def send_frame(self, png: bytes | None) -> None:
        """One frame: its PNG, or ``{"type": "same"}`` when it equals the frame before it."""
        if png is None:
            await self.send_json({"type": "same"})
        else:
            await self._send({"type": "websocket.send", "bytes": png})

    async def _send(self, message: dict[str, Any]) -> None:
        if self.ended.is_set():
            raise _Gone
        async with self.send_lock:
            try:
                await self.ws.send(message)
            except Exception as exc:  # the transport's many ways of saying "closed"
                self.ended.set()
                raise _Gone from exc

    def _strike(self) -> bool:
        """Count one bad message (strikes decay with time); True once there have been too many."""
        now = time.monotonic()
        self.strikes = max(0.0, self.strikes - (now - self.strike_t) / STRIKE_DECAY_S) + 1
        self.strike_t = now
        return self.strikes >= self.limits.max_strikes

    async def error(self, text: str, mid: Any = None, *, strike: bool = True, quiet: bool = False) -> None:
        """Tell the client what was wrong; strikes add up, and too many drop the session.

        ``quiet``: at most one such message a second (a flood must not make us flood back)."""
        fatal = strike and self._strike()
        now = time.monotonic()
        if fatal or not quiet or now - self.last_quiet_error > 1.0:
            if quiet:
                self.last_quiet_error = now
            await self.send_json({"type": "error", "id": mid, "error": text, "fatal": fatal})
        if fatal:
            await self.close(1008, "too many bad messages")

    async def close(self, code: int, reason: str) -> None:
        """Say why, close the socket, and end the session (raises _Gone)."""
        with contextlib.suppress(_Gone):
            await self.send_json({"type": "closed", "reason": reason})
        self.ended.set()
        with contextlib.suppress(Exception):
            await self.ws.close(code=code, reason=reason[:120])
        raise _Gone

    # -- lifecycle
    async def run(self) -> None:
        """Serve the connection until it closes; always frees the slot and the model."""
        tasks: list[asyncio.Task] = []
        try:
            await self.send_json({"type": "hello", "protocol": PROTOCOL, "limits": self.limits.public(),
                                  "models": [m.public() for m in self.server.pool.infos.values()]})
            tasks = [asyncio.create_task(self._read_loop()), asyncio.create_task(self._admit_then_work()),
                     asyncio.create_task(self._watchdog())]
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                exc = None if task.cancelled() else task.exception()
                if exc is not None and not isinstance(exc, _Gone):
                    log.error("session failed", exc_info=exc)
        except _Gone:
            pass
        finally:
            self.ended.set()
            # A task of its own, shielded: if the server cancels this handler (shutdown, or a test
            # client), the slot and the model are still given back.
            await asyncio.shield(asyncio.ensure_future(self._teardown(tasks)))

    async def _teardown(self, tasks: list[asyncio.Task]) -> None:
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
            for task in tasks:  # mark their endings (_Gone, mostly) as seen
                if not task.cancelled():
                    task.exception()
        # The slot stays taken until the pool thread is done with our model, so clients that vanish
        # mid-step cannot start more model work than max_sessions allows.
        if self.inflight is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wrap_future(self.inflight)
        if self.computer is not None:
            computer, self.computer = self.computer, None
            try:
                await self.loop.run_in_executor(self.server.engines, computer.close)
            except RuntimeError:  # the pool is shut down (server exit): close it here
                computer.close()
            except Exception:
                log.exception("closing a session's computer failed")
        if self.admitted:
            self.admitted = False
            self.server.slots.release()
        with contextlib.suppress(Exception):
            await self.ws.close()

    async def _admit(self) -> None:
        """Take a slot, waiting in the queue (and saying where) if need be."""
        slots = self.server.slots
        try:
            waiter = slots.join()
        except ServerFull as exc:
            await self.send_json({"type": "error", "id": None, "error": str(exc), "fatal": True})
            await self.close(1013, "server busy, try again later")
        if waiter is None:
            self.admitted = True
            return
        try:
            deadline = time.monotonic() + self.limits.queue_timeout_s
            while not waiter.granted.done():
                await self.send_json({"type": "queued", "position": slots.position(waiter)})
                waiter.moved.clear()
                if time.monotonic() > deadline:
                    await self.close(1013, "waited too long for a free slot")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(_first(waiter.granted, waiter.moved.wait()),
                                           timeout=max(0.0, deadline - time.monotonic()) + 0.01)
            self.admitted = True
        finally:
            if not self.admitted:
                slots.leave(waiter)

    async def _admit_then_work(self) -> None:
        await self._admit()
        self.last_activity = self.admitted_at = time.monotonic()
        await self.send_json({"type": "admitted"})
        await self._work_loop()

    def _in_use(self) -> bool:
        """An open or a step runs or waits (resets and settings do not count: see the module docstring)."""
        return self.busy in _USE or any(p.msg["op"] in _USE for p in self.pending)

    async def _time_up(self) -> None:
        """Give the slot up if it has been held for max_session_s and another connection waits for one."""
        limit = self.limits.max_session_s
        if self.admitted and self.server.slots.waiters and time.monotonic() - self.admitted_at > limit:
            await self.close(1000, f"session time is up ({limit:g} s) and others are waiting")

    async def _watchdog(self) -> None:
        period = max(0.05, min(1.0, self.limits.idle_timeout_s / 4, self.limits.max_session_s / 4))
        while True:
            await asyncio.sleep(period)
            idle = time.monotonic() - self.last_activity
            if self.admitted and not self._in_use() and idle > self.limits.idle_timeout_s:
                await self.close(1000, f"idle for {self.limits.idle_timeout_s:g} s")
            if self.busy is None:
                await self._time_up()

    # -- reading
    async def _read_loop(self) -> None:
        while True:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                self.ended.set()
                raise _Gone
            if not self.bucket.take():  # dropped unread, and a strike each
                await self.error(f"rate limit: at most {self.limits.rate_per_s:g} messages/s; message dropped",
                                 quiet=True)
                continue
            text = message.get("text")
            if text is None:
                await self.error("binary messages are not accepted; send JSON text")
                continue
            limit = self.limits.max_message_bytes
            if len(text) > limit or len(text.encode("utf-8", "surrogatepass")) > limit:
                await self.error(f"message too large (limit {limit} bytes)")
                continue
            try:
                msg = parse_message(text)
            except ProtocolError as exc:
                await self.error(str(exc))
                continue
            try:
                await self._accept(msg)
            except ProtocolError as exc:
                await self.error(str(exc), msg.get("id"))
            except (_Gone, asyncio.CancelledError):
                raise
            except Exception as exc:  # a bug must not end the session quietly: log it, tell the client
                log.exception("message %.200r", text)
                await self.error(f"internal error: {type(exc).__name__}", msg.get("id"))

    async def _accept(self, msg: dict[str, Any]) -> None:
        """Answer a ping, or check an op and queue it (coalescing desktop input)."""
        op, mid = msg["op"], msg.get("id")
        if op == "ping":
            await self.send_json({"type": "pong", "id": mid, "t": msg.get("t")})
            return
        if op in _USE:
            self.last_activity = time.monotonic()
        item = _Op(msg, time.monotonic())
        if op == "open":
            if msg["model"] not in self.server.pool.infos:
                raise ProtocolError(f"unknown model {msg['model']!r:.60} (expected one of "
                                    f"{', '.join(self.server.pool.infos)})")
            self.target = self.server.pool.infos[msg["model"]]
            self.pending.clear()  # a new model: whatever was queued for the old one is moot
        elif self.target is None:
            await self.error('no model open: send {"op": "open", "model": NAME} first', mid, strike=False)
            return
        elif op == "reset":
            self.pending = deque(p for p in self.pending if p.msg["op"] != "step")  # queued input is moot
        elif op == "settings":
            msg["settings"] = check_settings(msg, self.target.kind)
        elif op == "step":
            action = check_action(msg.get("action"), self.target.kind, self.target.screen)
            last = self.pending[-1] if self.pending else None
            if self.target.kind == "desktop" and last is not None and last.msg["op"] == "step":
                # The model is busy: fold this input into the frame already waiting for it.
                last.msg = {**last.msg, "action": merge_frames(last.msg["action"], action), "id": mid}
                last.coalesced += 1
                return
        if len(self.pending) >= self.limits.max_pending:
            await self.error(f"busy: {len(self.pending)} ops already waiting; this one was dropped", mid,
                             strike=False)
            return
        self.pending.append(item)
        self.wakeup.set()

    # -- working
    async def _work_loop(self) -> None:
        while True:
            if not self.pending:
                self.wakeup.clear()
                await self.wakeup.wait()
                continue
            await self._time_up()
            item = self.pending.popleft()
            self.busy = item.msg["op"]
            try:
                await self._run_op(item)
            except NCError as exc:  # the model refused the input: one line, a strike
                await self.error(str(exc), item.msg.get("id"))
            except (_Gone, _Cancelled):
                raise _Gone from None
            except Exception as exc:  # a bug or a failing model: report it, keep serving
                log.exception("op %s failed", item.msg["op"])
                await self.error(f"internal error in {item.msg['op']}: {type(exc).__name__}: {exc}"[:300],
                                 item.msg.get("id"), strike=False)
            finally:
                if self.busy in _USE:
                    self.last_activity = time.monotonic()
                self.busy = None

    async def _in_pool(self, fn: Callable[[], Any], *, model: bool = True) -> Any:
        """Run work in the shared model pool (or, ``model=False``, in the pool for work without the
        model); remember it so teardown can wait for it."""
        self.inflight = future = (self.server.executor if model else self.server.engines).submit(fn)
        result = await asyncio.wrap_future(future)
        self.inflight = None
        return result

    async def _run_op(self, item: _Op) -> None:
        msg, mid = item.msg, item.msg.get("id")
        op = msg["op"]
        if op != "open" and self.computer is None:
            raise NCError("no model open (opening it failed?)")
        await self.send_json({"type": "started", "op": op, "id": mid})
        if op == "open":
            await self._open(msg["model"])
            await self.send_json({"type": "ready", "id": mid, **self.info.public(), "model": self.info.name,
                                  "settings": self._settings(), "latency_s": time.monotonic() - item.received})
        elif op == "reset":
            computer = self.computer
            png = await self._in_pool(lambda: encode_png(computer.reset()), model=computer.kind == "desktop")
            await self.send_frame(png)
            await self.send_json({"type": "reset", "id": mid, "frames": 1,
                                  "latency_s": time.monotonic() - item.received})
        elif op == "settings":
            await self._in_pool(lambda: self._apply_settings(msg["settings"]), model=False)
            await self.send_json({"type": "settings", "id": mid, "settings": self._settings()})
        else:
            await self._step(item)

    async def _open(self, name: str) -> None:
        info = self.server.pool.infos[name]
        if self.computer is not None:
            old, self.computer, self.info = self.computer, None, None
            await self._in_pool(old.close, model=False)

        def load() -> tuple[Any, bytes]:
            computer = self.server.pool.new_computer(name)
            return computer, encode_png(computer.reset())

        self.computer, png = await self._in_pool(load)
        self.info = info
        await self.send_frame(png)

    def _apply_settings(self, settings: dict[str, Any]) -> None:
        for name, value in settings.items():
            setattr(self.computer, name, value)

    def _settings(self) -> dict[str, Any]:
        c = self.computer
        return {"steps": c.steps, "seed": c.seed, "deterministic": c.deterministic, "hybrid": c.hybrid}

    async def _step(self, item: _Op) -> None:
        """Run one step in the pool, sending each frame the moment the model hands it over."""
        frames: asyncio.Queue[bytes | None] = asyncio.Queue()
        ended, loop, computer = self.ended, self.loop, self.computer
        action = item.msg["action"]
        first: list[float] = []
        previous: list[np.ndarray] = []

        def on_frame(frame: np.ndarray) -> None:  # runs in the pool thread
            if ended.is_set():
                raise _Cancelled  # nobody is watching any more: drop this frame and the rest
            same = bool(previous) and np.array_equal(previous[0], frame)
            png = None if same else encode_png(frame)
            previous[:] = [frame]
            if not first:
                first.append(time.monotonic())
            loop.call_soon_threadsafe(frames.put_nowait, png)

        t0 = time.monotonic()
        plan = await self._in_pool(lambda: computer.plan(action), model=False)  # a hybrid command runs here
        job = asyncio.ensure_future(self._in_pool(lambda: computer.render(plan, callback=on_frame)))
        sent, getter = 0, None
        try:
            while not job.done() or not frames.empty():
                getter = asyncio.ensure_future(frames.get())
                await asyncio.wait({job, getter}, return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    await self.send_frame(getter.result())
                    sent += 1
                else:
                    getter.cancel()
        except BaseException:
            self.ended.set()  # the step runs to its end in the pool; its remaining frames are dropped
            job.add_done_callback(lambda j: j.cancelled() or j.exception())  # nobody else will read it
            raise
        finally:
            if getter is not None:
                getter.cancel()
        result = job.result()  # raises the model's NCError
        compute_s = time.monotonic() - t0
        total = len(result.frames)
        for frame in result.frames[sent:]:  # a computer that did not call back: send what it returned
            await self.send_frame(await self._in_pool(lambda f=frame: encode_png(f)))
        await self.send_json({
            "type": "step", "id": item.msg.get("id"), "frames": total, "record": result.record,
            "latency_s": time.monotonic() - item.received, "compute_s": compute_s,
            "first_frame_s": first[0] - t0 if first else None, "fps": total / compute_s if compute_s > 0 else None,
            "coalesced": item.coalesced})


async def _first(future: asyncio.Future, coro: Any) -> None:
    """Wait until ``future`` is done or ``coro`` finishes."""
    task = asyncio.ensure_future(coro)
    try:
        await asyncio.wait({future, task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        task.cancel()


# ---------------------------------------------------------------------------------------------
# The app


def create_app(models: dict[str, Path] | ModelPool, *, token: str | None = None, max_sessions: int = 4,
               idle_timeout_s: float = 300.0, max_message_bytes: int = 64 * 1024, max_queue: int = 8,
               queue_timeout_s: float = 600.0, rate_per_s: float = 30.0, burst: int = 60, max_strikes: int = 10,
               max_pending: int = 8, workers: int = 1, shared_weights: bool = True,
               allowed_hosts: list[str] | None = None, max_session_s: float = 3600.0) -> FastAPI:
    """The web app serving ``models`` (name -> model directory, or a :class:`ModelPool` already loaded).

    Args:
        token: when set, every request and websocket must carry it (``?token=``, a Bearer header, or
            the cookie ``GET /?token=`` sets). ``ncomp serve`` requires one off loopback.
        max_sessions .. max_pending, max_session_s: see :class:`ServerLimits`.
        workers: threads doing model work for all sessions together.
        shared_weights: see :class:`ModelPool`.
        allowed_hosts: ``Host`` header names accepted (a DNS-rebinding guard). Default: loopback
            names without a token, any host with one.
    """
    if not models:
        raise NCError("no models to serve (give at least one NAME=PATH)")
    limits = ServerLimits(max_sessions=max_sessions, max_queue=max_queue, queue_timeout_s=queue_timeout_s,
                          idle_timeout_s=idle_timeout_s, max_message_bytes=max_message_bytes, rate_per_s=rate_per_s,
                          burst=burst, max_strikes=max_strikes, max_pending=max_pending, workers=workers,
                          max_session_s=max_session_s)
    pool = models if isinstance(models, ModelPool) else ModelPool(models, shared_weights=shared_weights)
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=limits.workers, thread_name_prefix="ncomp-model")
    # one thread per slot: a session runs one op at a time, so none waits here for another's sandbox
    engines = concurrent.futures.ThreadPoolExecutor(max_workers=limits.max_sessions, thread_name_prefix="ncomp-engine")
    server = _Server(pool, limits, executor, engines, SessionSlots(limits.max_sessions, limits.max_queue))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        server.executor.shutdown(wait=False, cancel_futures=True)
        server.engines.shutdown(wait=False, cancel_futures=True)
        if pool is not models:  # ours to close (a pool passed in may serve other apps)
            pool.close()

    quiet_client_errors()
    app = FastAPI(title="Neural Computer", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.server = server

    @app.get("/", include_in_schema=False)
    async def index(request: Request) -> FileResponse:
        response = FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})
        offered = request.query_params.get("token")
        # Only a right token becomes the cookie: a wrong one (the request got in on the cookie) must
        # not overwrite a good cookie.
        if token is not None and offered and hmac.compare_digest(offered.encode(), token.encode()):
            response.set_cookie(TOKEN_COOKIE, offered, httponly=True, samesite="strict")
        return response

    @app.get("/api/models")
    async def list_models() -> dict[str, Any]:
        return {"protocol": PROTOCOL, "models": [m.public() for m in pool.infos.values()],
                "limits": limits.public()}

    @app.websocket("/ws")
    async def websocket(ws: WebSocket) -> None:
        await ws.accept()
        await Session(ws, server).run()

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(AccessMiddleware, token=token)
    if allowed_hosts is None:
        allowed_hosts = ["*"] if token is not None else list(LOOPBACK_HOSTS)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)
    return app
