"""The neural computer: a trained model you step with commands or mouse and keyboard input.

The paper's loop, ``h_t = F(h_{t-1}, x_t, u_t)`` and ``x_{t+1} ~ G(h_t)``, as one object for both
kinds of model:

* **terminal** (a CLIGen model): the state is the current screen; ``step({"type": "command",
  "text": "ls"})`` renders the session that follows from that screen and a caption of what the user
  typed. In **hybrid** mode a reasoning engine (:mod:`neuralcomputer.runtime.engines`: a real shell in
  a sandbox) runs the command first and the caption also says what the screen must show (the paper's
  reprompting, arithmetic 4% -> 83%); the model still draws every pixel.
* **desktop** (a GUIWorld model): the state is the latents of the last frames (the context window)
  and the action log; each ``step`` takes one input (a meta-action such as a click, or one frame's raw
  events) and generates the next frame from the cached context.

Deterministic by default: the noise of step ``n`` is seeded by ``(seed, n)`` (terminal) or
``(seed, frame)`` (desktop), so a state saved with :meth:`NeuralComputer.save` and restored later
continues with bit-identical frames. Every step leaves a JSON-able record (input, seed, caption,
engine output, timings) in :attr:`NeuralComputer.history`.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from neuralcomputer.data.desktop.actions import FrameActions, check_event, check_meta, meta_to_events
from neuralcomputer.diffusion.sampling import deterministic_algorithms
from neuralcomputer.errors import NCError
from neuralcomputer.eval.interface import STAND_INS, ClipGenerator, ReferenceOracle

FIRST_FRAME = "first_frame.png"  # a model directory may ship its default start screen under this name
MAX_COMMAND_BYTES = 1000  # UTF-8 bytes, as the model's caption limit counts them
MAX_HISTORY = 1000  # step records kept per session (older ones are dropped)
_STATE_VERSION = 1


@dataclass
class StepResult:
    """What one step produced: the new frames ``(T, H, W, 3)`` uint8 and the step's record."""

    frames: np.ndarray
    record: dict[str, Any]


@dataclass
class StepPlan:
    """A step's part that needs no model (:meth:`NeuralComputer.plan`): the action checked and, for a
    terminal, its caption (in hybrid mode written by the engine, whose command has run by now).

    ``at`` is the computer's state it was made for: :meth:`NeuralComputer.render` refuses it later."""

    action: dict[str, Any]
    at: tuple[int, int]
    caption: str | None = None
    engine: dict[str, Any] | None = None
    engine_s: float = 0.0


_FORGOTTEN = FrameActions(-1, 0.0, (0, 0))  # stands in for records older than any window


def check_command(command: Any) -> str:
    """A terminal command: one line of non-blank text, at most :data:`MAX_COMMAND_BYTES` UTF-8 bytes."""
    try:
        size = len(command.encode()) if isinstance(command, str) else None
    except UnicodeEncodeError:  # a lone surrogate (JSON allows "\ud800"): not text
        size = None
    if size is None or not command.strip() or size > MAX_COMMAND_BYTES or "\n" in command or "\r" in command:
        raise NCError(f"command: one line of non-blank text, at most {MAX_COMMAND_BYTES} bytes (UTF-8)")
    return command


def _step_seed(seed: int, n: int) -> int:
    """The noise seed of step ``n`` of a session started with ``seed`` (independent of wall time)."""
    return int(np.random.default_rng([seed, n]).integers(2**31))


class NeuralComputer:
    """One session of a neural computer. Use :meth:`load`; then :meth:`reset` and :meth:`step`.

    Attributes:
        kind: ``"terminal"`` or ``"desktop"``.
        fps: frames per second of the generated video.
        size: ``(H, W)`` of frames.
        screen: ``(W, H)`` the desktop action coordinates refer to (terminal: the frame size).
        seed: the session seed (settable; applies from the next step).
        history: one JSON-able record per step.
    """

    def __init__(self, backend: Any, *, model_dir: Path | None = None, seed: int = 0, hybrid: bool = False,
                 engine: str = "shell") -> None:
        from neuralcomputer.pipelines.guiworld import GUIWorldRollout

        self.backend = backend
        self.model_dir = model_dir
        self.kind = "desktop" if isinstance(backend, GUIWorldRollout) else "terminal"
        self.seed = int(seed)
        self.history: list[dict[str, Any]] = []
        self._engine_name = engine
        self._engine: Any = None
        self._frame: np.ndarray | None = None
        self._n = 0  # steps taken since reset
        self._resets = 0  # resets and restores so far: with _n, which state a StepPlan was made for
        # desktop state: frame index, latents of recent frames, the action log, the pointer
        self._t = 0
        self._latents: dict[int, torch.Tensor] = {}
        self._records: list[FrameActions] = []
        if hybrid:
            self.hybrid = True

    @classmethod
    def load(cls, path: str | Path, *, steps: int | None = None, sampler: str | None = None, seed: int = 0,
             deterministic: bool = True, hybrid: bool = False, engine: str = "shell") -> NeuralComputer:
        """A terminal or desktop computer from a run folder, checkpoint or model directory (no network)."""
        from neuralcomputer.pipelines.cligen import resolve_model_dir
        from neuralcomputer.pipelines.load import load_pipeline

        model_dir = resolve_model_dir(path)
        backend: Any = load_pipeline(model_dir, steps=steps, sampler=sampler, deterministic=deterministic)
        return cls(backend, model_dir=model_dir, seed=seed, hybrid=hybrid, engine=engine)

    # -- settings ----------------------------------------------------------------------------------

    @property
    def fps(self) -> float:
        return float(self.backend.model.config["fps"])

    @property
    def size(self) -> tuple[int, int]:
        cfg = self.backend.model.config
        return int(cfg["height"]), int(cfg["width"])

    @property
    def screen(self) -> tuple[int, int]:
        return self.backend.screen if self.kind == "desktop" else (self.size[1], self.size[0])

    @property
    def grid(self) -> tuple[int, int]:
        """``(cols, rows)`` of the terminal the model draws (the training data's 13 px font)."""
        from neuralcomputer.data.terminal.render import FrameRenderer

        atlas = FrameRenderer(1, 1).atlas
        return self.size[1] // atlas.cell_width, self.size[0] // atlas.cell_height

    @property
    def steps(self) -> int:
        """Denoising steps per generated frame (terminal: per clip)."""
        return int(self.backend.steps)

    @steps.setter
    def steps(self, value: int) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 200:
            raise NCError(f"steps: expected an integer in 1..200, got {value!r:.40}")
        self.backend.steps = value

    @property
    def deterministic(self) -> bool:
        return bool(self.backend.deterministic)

    @deterministic.setter
    def deterministic(self, value: bool) -> None:
        self.backend.deterministic = bool(value)

    @property
    def hybrid(self) -> bool:
        """Whether a reasoning engine runs each command first (terminal models only)."""
        return self._engine is not None

    @hybrid.setter
    def hybrid(self, value: bool) -> None:
        if bool(value) == self.hybrid:
            return
        if not value:
            self._engine.close()
            self._engine = None
            return
        if self.kind != "terminal":
            raise NCError("hybrid mode needs a terminal model (a reasoning engine runs commands)")
        from neuralcomputer.runtime.engines import make_engine

        cols, rows = self.grid
        self._engine = make_engine(self._engine_name, cols=cols, rows=rows, max_caption_bytes=self.caption_limit)

    @property
    def caption_limit(self) -> int:
        """The longest caption the terminal model reads, in UTF-8 bytes (its byte encoder's ``max_len``;
        for UMT5, whose limit counts tokens, two less: a token covers at least a byte, plus the
        end token and a leading word mark)."""
        text = self.backend.model.config["text"]
        return int(text["max_len"]) if text.get("kind", "bytes") == "bytes" else int(text["max_len"]) - 2

    @property
    def engine(self) -> Any:
        """The reasoning engine of hybrid mode (None when off)."""
        return self._engine

    @property
    def frame(self) -> np.ndarray:
        """The current screen ``(H, W, 3)`` uint8."""
        if self._frame is None:
            raise NCError("no screen yet: call reset() first")
        return self._frame

    @property
    def latents(self) -> dict[int, torch.Tensor]:
        """Desktop: frame index -> latents ``(C, h, w)`` of the frames the context window still needs
        (the model's memory; a copy). Terminal: empty (its state is the screen itself)."""
        return {i: v.clone() for i, v in self._latents.items()}

    @property
    def state(self) -> dict[str, Any]:
        """A JSON-able summary of what the computer holds now."""
        out: dict[str, Any] = {"kind": self.kind, "steps_taken": self._n, "seed": self.seed,
                               "screen": list(self.frame.shape) if self._frame is not None else None,
                               "hybrid": self.hybrid}
        if self.kind == "desktop" and self._records:
            out |= {"frame": self._t, "pointer": list(self._records[-1].pointer),
                    "context_frames": sorted(self._latents),
                    "latent_shape": list(next(iter(self._latents.values())).shape) if self._latents else None}
        return out

    # -- the loop ----------------------------------------------------------------------------------

    def default_first_frame(self) -> np.ndarray:
        """The model directory's ``first_frame.png`` if it ships one, else (terminal) an empty prompt."""
        if self.model_dir is not None and (self.model_dir / FIRST_FRAME).is_file():
            return np.asarray(Image.open(self.model_dir / FIRST_FRAME).convert("RGB"))
        if self.kind == "desktop":
            raise NCError(f"{self.model_dir}: no {FIRST_FRAME}; pass a first frame (a desktop screenshot)")
        from neuralcomputer.data.terminal.emulator import Terminal
        from neuralcomputer.data.terminal.recorder import shell_prompt
        from neuralcomputer.data.terminal.render import FrameRenderer

        cols, rows = self.grid
        terminal = Terminal(cols, rows)
        terminal.feed(shell_prompt())
        frame = FrameRenderer(cols, rows).render(terminal)
        out = np.zeros((*self.size, 3), np.uint8)
        out[: frame.shape[0], : frame.shape[1]] = frame[: self.size[0], : self.size[1]]
        return out

    def reset(self, first_frame: np.ndarray | None = None, pointer: tuple[int, int] | None = None) -> np.ndarray:
        """Start over from ``first_frame`` ``(H, W, 3)`` uint8 (default: :meth:`default_first_frame`).

        Terminal frames must be the model's size; desktop frames are resized to it, and ``pointer``
        (screen pixels) is where the pointer is in it (default: the screen's centre). Returns the screen.
        """
        frame = self.default_first_frame() if first_frame is None else np.asarray(first_frame)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise NCError(f"first frame: expected (H, W, 3) uint8 RGB, got {frame.shape} {frame.dtype}")
        if self.kind == "terminal":
            self.backend.check_frame(frame)  # before anything changes
        self.history = []
        self._n = 0
        self._resets += 1
        if self.kind == "terminal":
            self._frame = frame.copy()
            if self._engine is not None:
                self._engine.reset()
        else:
            with torch.no_grad():
                self._frame, latents = self.backend.encode_first(frame)
            self._t = 0
            self._latents = {0: latents}
            w, h = self.screen
            self._records = [FrameActions(0, 0.0, tuple(pointer) if pointer is not None else (w // 2, h // 2))]
            if hasattr(self.backend, "show"):  # a model of cursor-free framebuffers: draw the arrow in
                self._frame = self.backend.show(self._frame, self._records[0].pointer)
        return self.frame

    def step(self, action: dict[str, Any], callback: Callable[[np.ndarray], None] | None = None) -> StepResult:
        """Apply one input and generate what follows; ``callback`` receives each new frame ``(H, W, 3)``.

        Terminal: ``{"type": "command", "text": "ls -la"}``. Desktop: a meta-action (``move``, ``click``,
        ``drag``, ``scroll``, ``type``, ``key``; see :mod:`neuralcomputer.data.desktop.actions`) or one frame's
        input ``{"type": "frame", "events": [...], "meta": [...]}``. A malformed action raises
        :class:`NCError` and changes nothing. The same as :meth:`render` of :meth:`plan`.
        """
        return self.render(self.plan(action), callback)

    def plan(self, action: dict[str, Any]) -> StepPlan:
        """The first part of :meth:`step`, which uses no model: check the action and, for a terminal in
        hybrid mode, run the command in the engine's sandbox and take its caption. A server runs it
        outside the model's worker, so a command's wall time does not hold other sessions' model work."""
        self.frame  # noqa: B018 -- reset() must have run
        if not isinstance(action, dict):
            raise NCError(f"action: expected a JSON object, got {type(action).__name__}")
        at = (self._resets, self._n)
        if self.kind != "terminal":
            return StepPlan(action, at)  # checked in render: a desktop step's checks need its action log
        return StepPlan(action, at, **self._terminal_plan(action))

    def render(self, plan: StepPlan, callback: Callable[[np.ndarray], None] | None = None) -> StepResult:
        """The second part of :meth:`step`: the model generates what follows the planned step."""
        if plan.at != (self._resets, self._n):
            raise NCError("this step was planned before the computer's last step, reset or restore: plan it again")
        action = plan.action
        start = time.perf_counter()
        if self.kind == "terminal":
            frames, record = self._terminal_render(plan)
        else:
            frames, record = self._desktop_step(action)
        record = {"step": self._n, "action": action, **record}
        record["timings"]["total_s"] = time.perf_counter() - start + plan.engine_s
        record["frames"] = len(frames)
        self._n += 1
        self.history.append(record)
        del self.history[:-MAX_HISTORY]  # a long session keeps its recent records, not all of them
        if callback is not None:
            for f in frames:
                callback(f)
        return StepResult(frames, record)

    def _terminal_plan(self, action: dict[str, Any]) -> dict[str, Any]:
        if action.get("type") != "command":
            raise NCError(f"action type {action.get('type')!r}: a terminal model takes "
                          '{"type": "command", "text": ...}')
        command = check_command(action.get("text"))
        engine = None
        t0 = time.perf_counter()
        if self._engine is not None:
            self._engine.check(command)  # its caption must fit before anything runs in the sandbox
            result = self._engine.run(command)
            caption = result.caption
            engine = {"name": self._engine.name, "screen_text": result.screen_text, "exit_code": result.exit_code,
                      "timed_out": result.timed_out, "truncated": result.truncated, "elapsed_s": result.elapsed_s}
        else:
            caption = f"The user types `{command}`."  # the detailed tier's wording, nothing more known
            if (n := len(caption.encode())) > self.caption_limit:
                raise NCError(f"command: too long for this model's captions (they hold {self.caption_limit} "
                              f"bytes, and this command's needs {n})")
        return {"caption": caption, "engine": engine, "engine_s": time.perf_counter() - t0}

    def _terminal_render(self, plan: StepPlan) -> tuple[np.ndarray, dict[str, Any]]:
        from neuralcomputer.pipelines.cligen import hold_frames

        t1 = time.perf_counter()
        seed = _step_seed(self.seed, self._n)
        pipe = self.backend
        sampled = pipe.sample_frames(self._frame[None], [plan.caption], seed)[0]
        video = hold_frames(sampled, pipe.stride, (pipe.num_frames - 1) * pipe.stride + 1)[1:]
        self._frame = video[-1].copy()
        timings = {"engine_s": plan.engine_s, "sample_s": time.perf_counter() - t1}
        return video, {"seed": seed, "caption": plan.caption, "engine": plan.engine, "timings": timings}

    def _desktop_step(self, action: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
        kind = action.get("type")
        if kind == "frame":
            extra = set(action) - {"type", "events", "meta", "pointer"}
            if extra:
                raise NCError(f"frame action: unknown fields {sorted(extra)}")
            events, metas = action.get("events", []), action.get("meta", [])
            if not isinstance(events, list) or not isinstance(metas, list):
                raise NCError("frame action: events and meta must be lists")
            events = [check_event(e, f"frame action event {i}") for i, e in enumerate(events)]
            metas = [check_meta(m, f"frame action meta {i}") for i, m in enumerate(metas)]
        else:
            metas = [check_meta(action, "action")]
            events = meta_to_events(metas[0])
        pointer = self._records[-1].pointer
        for e in events:
            if e["type"] == "move":
                pointer = (e["x"], e["y"])
        if kind == "frame" and "pointer" in action:
            p = action["pointer"]
            if not (isinstance(p, list) and len(p) == 2 and all(isinstance(v, int | float) for v in p)):
                raise NCError(f"frame action: pointer must be [x, y], got {p!r:.60}")
            pointer = (round(p[0]), round(p[1]))
        w, h = self.screen
        pointer = (min(max(int(pointer[0]), 0), w - 1), min(max(int(pointer[1]), 0), h - 1))
        # record t holds the input sent after frame t; the next records carry the pointer read back.
        # A step that fails is rolled back: it changes nothing.
        records, count, last = self._records, len(self._records), self._records[-1]
        stride = int(self.backend.model.config["frame_stride"])
        records[-1] = FrameActions(last.frame, last.t, last.pointer, events, metas)
        records.extend(FrameActions(self._t + k, (self._t + k) / self.fps, pointer) for k in range(1, stride + 1))
        target = self._t + stride
        from neuralcomputer.pipelines.guiworld import RolloutTimings

        timings = RolloutTimings()
        latents = dict(self._latents)
        try:
            with torch.no_grad(), deterministic_algorithms(self.backend.deterministic):
                frame = self.backend.generate_frame(latents, records, target, self.seed, timings)
        except BaseException:
            del records[count:]
            records[-1] = last
            raise
        keep = target - (self.backend.model.window - 1) * stride  # the oldest frame a window still needs
        # the window's step actions read records from keep - stride on; older ones are never read
        # again: one shared empty record stands in for them (the list stays indexed by frame)
        oldest_read = keep - stride
        for i in range(max(0, oldest_read - stride), max(0, oldest_read)):
            records[i] = _FORGOTTEN
        self._t = target
        self._latents = {i: v for i, v in latents.items() if i >= keep}
        held = np.repeat(self._frame[None], stride - 1, 0)  # frames between two generated ones hold the last
        self._frame = frame
        return np.concatenate([held, frame[None]]), {
            "seed": self.seed, "frame": target, "pointer": list(pointer),
            "timings": {"context_s": timings.context, "denoise_s": timings.denoise, "decode_s": timings.decode}}

    # -- the clip contract of eval and probes --------------------------------------------------------

    @property
    def clip_frames(self) -> int:
        """Frames of one terminal step's clip, the first (given) frame included."""
        return int(self.backend.clip_frames)

    def generate(self, first_frame: np.ndarray, caption: str, num_frames: int, seed: int) -> np.ndarray:
        """:class:`~neuralcomputer.eval.interface.ClipGenerator` for terminal models: the clip that follows
        ``first_frame`` under ``caption`` (a dataset's caption, any tier), ``(num_frames, H, W, 3)`` uint8.

        What ``ncomp eval`` and ``ncomp probe`` call: the same sampler as :meth:`step`, with the caption
        given rather than written from a command; the session's own screen and history are untouched.
        """
        if self.kind != "terminal":
            raise NCError("clips from a caption need a terminal model (score desktop models with ncomp eval desktop)")
        return self.backend.generate(first_frame, caption, num_frames, seed)

    # -- state -------------------------------------------------------------------------------------

    def _identity(self) -> dict[str, Any]:
        """What a saved state must match to be restored into this computer (the model config)."""
        return {"kind": self.kind, "config": json.loads(json.dumps(self.backend.model.config, default=str))}

    def save(self, path: str | Path) -> Path:
        """Write the state (screen, latents, action log, history, settings) to the folder ``path``.

        Written to a temporary folder and renamed, so a crash never leaves a half state. The hybrid
        engine's sandbox (its files) is not part of the state: a restored session gets a fresh one.
        """
        path = Path(path)
        self.frame  # noqa: B018
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        tmp.mkdir(parents=True)
        try:
            Image.fromarray(self._frame).save(tmp / "frame.png")
            state = {"version": _STATE_VERSION, **self._identity(), "seed": self.seed, "steps": self.steps,
                     "deterministic": self.deterministic, "n": self._n, "history": self.history}
            if self.kind == "desktop":
                state.update(t=self._t, records=[r.to_json() for r in self._records])
                save_file({str(i): v.contiguous() for i, v in self._latents.items()}, tmp / "latents.safetensors")
            (tmp / "state.json").write_text(json.dumps(state, default=str))
            if path.exists():
                shutil.rmtree(path)
            tmp.rename(path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return path

    def restore(self, path: str | Path) -> np.ndarray:
        """Continue from a state written by :meth:`save` (same model); returns the screen."""
        path = Path(path)
        if not (path / "state.json").is_file():
            raise NCError(f"{path}: not a saved state (no state.json)")
        try:
            state = json.loads((path / "state.json").read_text())
        except json.JSONDecodeError as exc:
            raise NCError(f"{path / 'state.json'}: corrupt ({exc.msg} at line {exc.lineno})") from None
        if state.get("version") != _STATE_VERSION:
            raise NCError(f"{path}: state version {state.get('version')!r}, expected {_STATE_VERSION}")
        if {k: state.get(k) for k in ("kind", "config")} != self._identity():
            raise NCError(f"{path}: saved from a different model (kind or config differs)")
        # read everything first: a state that fails to load leaves this computer as it was
        frame = np.asarray(Image.open(path / "frame.png").convert("RGB"))
        if self.kind == "desktop":
            records = [FrameActions(r["frame"], r["t"], tuple(r["pointer"]), r["events"], r["meta"])
                       for r in state["records"]]
            latents = {int(k): v for k, v in load_file(path / "latents.safetensors").items()}
        self.seed, self.steps, self.deterministic = state["seed"], state["steps"], state["deterministic"]
        self._n, self.history, self._frame = state["n"], state["history"], frame
        self._resets += 1
        if self.kind == "desktop":
            self._t, self._records, self._latents = state["t"], records, latents
        elif self._engine is not None:
            self._engine.reset()
        return self.frame

    def close(self) -> None:
        """Release the reasoning engine (its sandbox and processes)."""
        self.hybrid = False



def load_generator(spec: str, *, dataset: str | Path | None = None) -> ClipGenerator:
    """A model by name: ``builtin:NAME`` for a stand-in (``builtin:reference-oracle`` needs ``dataset``),
    or a path: a run folder (its latest checkpoint), a checkpoint or a model directory."""
    if spec.startswith("builtin:"):
        name = spec.removeprefix("builtin:")
        if name == "reference-oracle":
            if dataset is None:
                raise NCError("builtin:reference-oracle needs the reference dataset")
            return ReferenceOracle(dataset)
        if name in STAND_INS:
            return STAND_INS[name]()
        raise NCError(f"unknown stand-in {name!r} (expected reference-oracle or one of {', '.join(STAND_INS)})")
    if Path(spec).exists():
        from neuralcomputer.runtime.computer import NeuralComputer  # the runtime, as a clip generator

        return NeuralComputer.load(spec)
    raise NCError(f"{spec}: no such model (give a run folder, checkpoint or model directory, or "
                  "builtin:copy-first-frame, builtin:reference-oracle, builtin:caption-renderer, "
                  "builtin:arithmetic-oracle or builtin:noisy-copy)")
