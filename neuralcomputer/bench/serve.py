"""``ncomp bench serve``: step latency, frames/s and memory of the web runtime with concurrent sessions.

What runs is what a browser meets: each model is loaded once (:class:`ModelPool`) and served by the
real app (:func:`create_app`) under uvicorn, on a free loopback port, from a background thread of this
process; websocket clients (the ``websockets`` library; one per browser tab) drive it. Terminal
sessions send a few different commands; desktop sessions move, click and press keys at varied
positions. Per model, after one warm-up session (open, one step, close):

* ``serve_memory``, per level N: RSS of this process (server and clients; freed heap trimmed first,
  so live memory) with the model loaded and warmed up but no session (``base_mb``), then with N
  sessions open that have each stepped once: ``per_session_mb`` = (RSS - base) / N, and
  ``mb_per_extra_session`` = the slope from the first level. Sessions are added level by level (level
  8 keeps level 4's four sessions and opens four more) with no other step between two readings.
* ``serve_step_latency``, per level N: N fresh sessions open at once, then each sends K steps, waiting
  for a step's reply before sending the next (a person watching the screen). Client-measured latency
  (step sent -> ``step`` status received) p50 and p95; frames received per second per session (mean
  over sessions of frames / that session's time) and in total (all frames / wall time); the
  server's ``compute_s`` mean (pool job submitted -> done, so it includes waiting for the shared
  worker) and the model's own time per step (``record.timings.total_s``).

Read the latency with the server's threading in mind: with the default single worker thread
(``workers=1``) the steps of different sessions run one after another, because on a CPU one step
already uses every core (and PyTorch's deterministic-algorithms switch is process-wide). So latency
grows about linearly with N by design, while total frames/s stays about flat; the figures say what
each of N people sharing one machine waits for.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
import threading
import time
from collections.abc import Coroutine, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from neuralcomputer.errors import NCError

TERMINAL_COMMANDS = ("ls -la", "pwd", "echo hello world", "python3 -c 'print(6 * 7)'", "cat notes.txt", "date",
                     "whoami", "df -h")
DESKTOP_KEYS = (["Return"], ["a"], ["ctrl", "s"], ["Tab"], ["BackSpace"])
DEFAULT_STEPS_PER_SESSION = {"terminal": 3, "desktop": 10}
MAX_FRAME_BYTES = 16 << 20  # one PNG frame; a 640x408 frame of noise is ~0.8 MB


def _rss_mb() -> float:
    """RSS of this process after freed heap pages go back to the OS, so that it counts live memory.

    Without the trim, RSS keeps whatever the largest step so far allocated and freed (activations).
    Even with it, some sequences of steps leave a ~30 MB plateau (the same in repeated runs, whatever
    the session count), so compare readings of one run. ``malloc_trim`` is glibc's; elsewhere the
    reading is plain RSS."""
    import ctypes
    import gc

    import psutil

    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    return psutil.Process().memory_info().rss / 2**20


def bench_action(kind: str, screen: tuple[int, int], session: int, step: int) -> dict[str, Any]:
    """The ``step``-th input of session ``session``: varied, and the same on every run."""
    if kind == "terminal":
        return {"type": "command", "text": TERMINAL_COMMANDS[(session + step) % len(TERMINAL_COMMANDS)]}
    rng = random.Random(session * 100_003 + step)
    w, h = screen
    x, y = rng.randrange(w), rng.randrange(h)
    if step % 3 == 0:
        return {"type": "move", "x": x, "y": y}
    if step % 3 == 1:
        return {"type": "click", "x": x, "y": y, "button": 1, "count": 1}
    return {"type": "key", "keys": rng.choice(DESKTOP_KEYS)}


@dataclass
class _Client:
    """One websocket session, speaking the protocol, with the timings of its steps."""

    ws: Any
    index: int
    timeout_s: float
    kind: str = ""
    screen: tuple[int, int] = (0, 0)
    sampling_steps: int = 0
    steps_taken: int = 0
    latencies: list[float] = field(default_factory=list)
    compute_s: list[float] = field(default_factory=list)
    model_s: list[float] = field(default_factory=list)
    frames: int = 0
    busy_s: float = 0.0

    async def send(self, msg: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(msg))

    async def until(self, *types: str) -> tuple[int, dict[str, Any]]:
        """Frames received (PNG or ``same``) up to the first JSON message of one of ``types``."""
        from websockets.exceptions import ConnectionClosed

        frames = 0
        while True:
            try:
                message = await asyncio.wait_for(self.ws.recv(), self.timeout_s)
            except TimeoutError:
                raise NCError(f"bench serve: session {self.index} got no reply in {self.timeout_s:g} s "
                              f"(waiting for {'/'.join(types)}); raise --timeout") from None
            except ConnectionClosed as exc:
                close = exc.rcvd
                why = f"{close.code} {close.reason}" if close is not None else "no close frame"
                raise NCError(f"bench serve: the server closed session {self.index} ({why})") from None
            if isinstance(message, bytes):
                frames += 1
                continue
            msg = json.loads(message)
            if msg["type"] == "same":
                frames += 1
            elif msg["type"] == "error":
                raise NCError(f"bench serve: session {self.index}: the server answered: {msg['error']}")
            elif msg["type"] in types:
                return frames, msg

    async def open(self, model: str, sampling_steps: int | None) -> None:
        await self.until("hello")
        await self.until("admitted")  # max_sessions covers every client: nobody queues
        await self.send({"op": "open", "model": model})
        _, ready = await self.until("ready")
        self.kind, self.screen = ready["kind"], (int(ready["screen"][0]), int(ready["screen"][1]))
        self.sampling_steps = int(ready["settings"]["steps"])
        if sampling_steps is not None:
            await self.send({"op": "settings", "steps": sampling_steps})
            _, reply = await self.until("settings")
            self.sampling_steps = int(reply["settings"]["steps"])

    async def step(self, timed: bool = True) -> None:
        action = bench_action(self.kind, self.screen, self.index, self.steps_taken)
        start = time.perf_counter()
        await self.send({"op": "step", "id": self.steps_taken, "action": action})
        frames, status = await self.until("step")
        latency = time.perf_counter() - start
        self.steps_taken += 1
        if timed:
            self.latencies.append(latency)
            self.compute_s.append(float(status["compute_s"]))
            self.model_s.append(float(status["record"]["timings"]["total_s"]))
            self.frames += frames
            self.busy_s += latency

    async def run(self, steps: int) -> None:
        for _ in range(steps):
            await self.step()


@contextlib.contextmanager
def _serving(app: Any) -> Iterator[int]:
    """Serve ``app`` with uvicorn on a free loopback port from a background thread; yields the port."""
    import uvicorn

    # proto IPPROTO_TCP, as `ncomp serve` gets from getaddrinfo: asyncio sets TCP_NODELAY only on sockets
    # whose proto says TCP, and without it Nagle meets delayed ACKs and every step reply waits ~40 ms.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", ws_max_size=1 << 20, timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="ncomp-bench-server", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise NCError(f"bench serve: the server did not start on 127.0.0.1:{port}")
            time.sleep(0.02)
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


async def _connect(port: int, index: int, timeout_s: float) -> _Client:
    from websockets.asyncio.client import connect
    from websockets.exceptions import WebSocketException

    try:  # no client pings: under a saturated CPU a late pong must not end a session mid-benchmark
        ws = await connect(f"ws://127.0.0.1:{port}/ws", open_timeout=min(timeout_s, 60), close_timeout=5,
                           max_size=MAX_FRAME_BYTES, ping_interval=None)
    except (OSError, TimeoutError, WebSocketException) as exc:
        raise NCError(f"bench serve: session {index} cannot connect to 127.0.0.1:{port} "
                      f"({type(exc).__name__}: {exc})") from None
    return _Client(ws, index, timeout_s)


async def _open_clients(port: int, model: str, first: int, count: int, sampling_steps: int | None,
                        timeout_s: float, clients: list[_Client], step: bool) -> None:
    """Open ``count`` more sessions at once (appended to ``clients`` as they connect); ``step``: step each once."""

    async def one(index: int) -> None:
        client = await _connect(port, index, timeout_s)
        clients.append(client)
        await client.open(model, sampling_steps)
        if step:
            await client.step(timed=False)

    await _all(one(first + i) for i in range(count))


async def _close_clients(clients: list[_Client]) -> None:
    await asyncio.gather(*(c.ws.close() for c in clients), return_exceptions=True)


def bench_serve(models: dict[str, Path], sessions: Sequence[int] = (1, 4, 8), steps_per_session: int | None = None,
                sampling_steps: int | None = None, threads: int | None = None, timeout_s: float = 600.0
                ) -> Iterator[dict[str, Any]]:
    """Serve each model in turn and measure N = each of ``sessions`` concurrent sessions.

    Args:
        models: name -> run folder, checkpoint or model directory.
        steps_per_session: K timed steps per session (default: 3 terminal, 10 desktop).
        sampling_steps: sent as each session's ``steps`` setting (default: the model's own).
        threads: PyTorch CPU threads (default: PyTorch's).
        timeout_s: the longest wait for any one reply (a step waits behind N - 1 others).
    """
    import torch

    # Imported now, so that the first model's load_mb counts the model and not the libraries (diffusers
    # imports its transformer lazily: ~160 MB).
    from diffusers import WanTransformer3DModel  # noqa: F401

    from neuralcomputer.pipelines.cligen import CLIGenPipeline  # noqa: F401
    from neuralcomputer.pipelines.guiworld import GUIWorldRollout  # noqa: F401
    from neuralcomputer.runtime.server import ModelPool, create_app

    if threads:
        torch.set_num_threads(threads)
    levels = sorted(set(sessions))
    if not levels or levels[0] < 1:
        raise NCError(f"bench serve: --sessions must be positive integers, got {list(sessions)}")
    for name, path in models.items():
        before_load = _rss_mb()
        pool = ModelPool({name: path})
        try:
            loaded = _rss_mb()
            info = pool.infos[name]
            weights = sum(t.numel() * t.element_size() for t in pool.templates[name].backend.model.state_dict().values())
            # Every client gets a slot (nobody queues), and no session idles out while others step.
            app = create_app(pool, max_sessions=levels[-1] + 1, idle_timeout_s=timeout_s * (levels[-1] + 1),
                             queue_timeout_s=timeout_s, workers=1)
            k = steps_per_session or DEFAULT_STEPS_PER_SESSION[info.kind]
            with _serving(app) as port, asyncio.Runner() as runner:
                yield from _bench_model(runner, port, name, levels, k, sampling_steps, timeout_s,
                                        {"before_load_mb": before_load, "model_load_mb": loaded - before_load,
                                         "weights_mb": weights / 2**20},
                                        {"model": name, "kind": info.kind, "size": f"{info.size[1]}x{info.size[0]}",
                                         "threads": torch.get_num_threads(), "workers": 1})
        finally:
            pool.close()


def _bench_model(runner: asyncio.Runner, port: int, name: str, levels: list[int], k: int,
                 sampling_steps: int | None, timeout_s: float, load: dict[str, float], common: dict[str, Any]
                 ) -> Iterator[dict[str, Any]]:
    # 1. Warm-up: one session opens, steps once and leaves, so the base holds one step's working memory.
    warm: list[_Client] = []
    try:
        runner.run(_open_clients(port, name, -1, 1, sampling_steps, timeout_s, warm, step=True))
    finally:
        runner.run(_close_clients(warm))
    time.sleep(0.2)  # let the server finish closing the warm-up session
    base = _rss_mb()

    # 2. Memory: sessions added level by level, each stepped once, with no other steps in between
    #    (the timed steps would leave the heap fragmented differently at every reading).
    clients: list[_Client] = []
    first: tuple[int, float] | None = None  # (sessions, RSS) of the first level
    try:
        for n in levels:
            runner.run(_open_clients(port, name, len(clients), n - len(clients), sampling_steps, timeout_s, clients,
                                     step=True))
            rss = _rss_mb()
            first = first or (n, rss)
            extra = (rss - first[1]) / (n - first[0]) if n > first[0] else None
            yield {"figure": "serve_memory", **common, "sessions": n, "rss_mb": round(rss, 1),
                   "base_mb": round(base, 1), "per_session_mb": round((rss - base) / n, 2),
                   "mb_per_extra_session": None if extra is None else round(extra, 2),
                   **{key: round(v, 1) for key, v in load.items()}}
    finally:
        runner.run(_close_clients(clients))

    # 3. Latency: N fresh sessions open at once, then all step K times, each waiting for its replies.
    for n in levels:
        clients = []
        try:
            runner.run(_open_clients(port, name, 0, n, sampling_steps, timeout_s, clients, step=False))
            start = time.perf_counter()
            runner.run(_all(c.run(k) for c in clients))
            wall = time.perf_counter() - start
        finally:
            runner.run(_close_clients(clients))
        latencies = np.concatenate([c.latencies for c in clients])
        frames = sum(c.frames for c in clients)
        yield {"figure": "serve_step_latency", **common, "sessions": n, "steps_per_session": k,
               "sampling_steps": clients[0].sampling_steps,
               "p50_s": round(float(np.percentile(latencies, 50)), 4),
               "p95_s": round(float(np.percentile(latencies, 95)), 4),
               "frames_per_step": round(frames / len(latencies), 2),
               "frames_per_s_per_session": round(float(np.mean([c.frames / c.busy_s for c in clients])), 3),
               "frames_per_s_total": round(frames / wall, 3),
               "compute_s_mean": round(float(np.mean([s for c in clients for s in c.compute_s])), 4),
               "model_s_mean": round(float(np.mean([s for c in clients for s in c.model_s])), 4),
               "wall_s": round(wall, 2)}


async def _all(coros: Iterable[Coroutine[Any, Any, None]]) -> None:
    """Run ``coros`` at once; the first failure cancels the rest and is raised as itself (one clear line)."""
    try:
        async with asyncio.TaskGroup() as group:
            for coro in coros:
                group.create_task(coro)
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None
