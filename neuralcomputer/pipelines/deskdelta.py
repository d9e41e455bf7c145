"""DeskDelta rollouts: the desktop generated frame by frame, the cursor composited at the pointer.

The same API as :class:`~neuralcomputer.pipelines.guiworld.GUIWorldRollout` (``ncomp rollout``, eval
and the runtime use either): ``encode_first`` takes a screenshot (X screenshots carry no cursor) and
the "latents" a rollout keeps are the model's own cursor-free framebuffers ``(3, H, W)`` in [0, 1];
each returned frame is that framebuffer with the arrow drawn at the step's pointer
(:data:`~neuralcomputer.data.desktop.episode.READ_CURSOR_SCALE`, as the training data shows it).

One network pass per frame and no noise: the rollout is deterministic by construction (``seed`` is
accepted for the common API and ignored). A model directory with a ``memory.npz`` also recalls
(:mod:`~neuralcomputer.models.deskmemory`): the config's ``recall.mode`` says whether the recalled
change replaces the network (``alone``: the network is not run), is pasted over its frame
(``over-network``) or is not used (``off``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from neuralcomputer.data.desktop.actions import FrameActions
from neuralcomputer.data.desktop.cursor import composite_cursor, cursor_sprite
from neuralcomputer.data.desktop.episode import READ_CURSOR_SCALE
from neuralcomputer.data.torch_dataset import resize_frames
from neuralcomputer.diffusion.sampling import deterministic_algorithms
from neuralcomputer.errors import NCError
from neuralcomputer.models.deskdelta import DeskDeltaModel, step_window
from neuralcomputer.models.deskmemory import TransitionMemory
from neuralcomputer.pipelines.cligen import resolve_model_dir
from neuralcomputer.pipelines.guiworld import GUIWorldRollout, RolloutTimings

RECALL_MODES = ("alone", "over-network", "off")
MEMORY_FILE = "memory.npz"


class DeskDeltaRollout(GUIWorldRollout):
    """Generate desktop frames with a :class:`DeskDeltaModel` (see the module docstring)."""

    def __init__(self, model: DeskDeltaModel, device: torch.device | str = "cpu", deterministic: bool = True,
                 gate_threshold: float | None = None, memory: TransitionMemory | None = None,
                 recall: str | None = None, **_: object) -> None:
        self.model = model.eval().to(device)
        self.device = torch.device(device)
        self.steps = 1  # one pass per frame (the runtime's steps control has nothing to trade here)
        self.sampler = "none"
        self.context_noise = 0.0
        self.deterministic = deterministic
        self.cache = False
        self.sprite = cursor_sprite(READ_CURSOR_SCALE)
        self.gate_threshold = float(model.config.get("gate_threshold", 0.0) if gate_threshold is None
                                    else gate_threshold)
        if memory is None and recall not in (None, "off"):
            raise NCError(f"recall mode {recall!r} needs a transition memory (the model directory has no {MEMORY_FILE}; "
                          "build one with ncomp export --memory-data)")
        self.memory = memory
        # a memory without a mode in the config was added by `ncomp export --memory-data`: use it alone
        self.recall = (recall or model.config.get("recall", {}).get("mode", "alone")) if memory is not None else "off"
        if self.recall not in RECALL_MODES:
            raise NCError(f"recall mode {self.recall!r}: expected one of {', '.join(RECALL_MODES)}")

    @classmethod
    def load(cls, path: str | Path, **kwargs) -> DeskDeltaRollout:
        """From a run folder (its latest model), a checkpoint or an exported model directory (with its
        transition memory when the directory has one)."""
        model_dir = resolve_model_dir(path)
        model = DeskDeltaModel.from_pretrained(model_dir)
        memory = None
        if (model_dir / MEMORY_FILE).is_file() and kwargs.get("recall") != "off":
            memory = TransitionMemory.load(model_dir / MEMORY_FILE, model.config.get("recall", {}))
        return cls(model, memory=memory, **kwargs)

    def _encode(self, frames: np.ndarray) -> torch.Tensor:
        """``(T, H, W, 3)`` uint8 at model size -> framebuffers ``(T, 3, H, W)`` float in [0, 1]."""
        return torch.from_numpy(np.ascontiguousarray(frames)).float().div(255).permute(0, 3, 1, 2).to(self.device)

    def pointer_at_size(self, pointer: tuple[int, int] | Sequence[float]) -> tuple[float, float]:
        """A screen-pixel pointer as pixels of the generated frame."""
        (sw, sh), (h, w) = self.screen, self.size
        return pointer[0] * w / sw, pointer[1] * h / sh

    def show(self, framebuffer: torch.Tensor | np.ndarray, pointer: tuple[int, int]) -> np.ndarray:
        """A framebuffer ``(3, H, W)`` float or ``(H, W, 3)`` uint8 with the arrow at ``pointer`` (screen px);
        as it is where the model draws the arrow itself (its ``cursor`` setting)."""
        if isinstance(framebuffer, torch.Tensor):
            framebuffer = (framebuffer.permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
        if self.model.learned_cursor:
            return framebuffer
        return composite_cursor(framebuffer, *self.pointer_at_size(pointer), self.sprite)

    def _rollout(self, first_frame: np.ndarray, actions: Sequence[FrameActions], seed: int,
                 callback: Callable[[int, int], None] | None,
                 true_frames: np.ndarray | None) -> tuple[np.ndarray, RolloutTimings]:
        """As GUIWorld's; a model that draws the cursor itself reads framebuffers with the arrow in."""
        if self.model.learned_cursor:
            h, w = self.size
            draw = lambda fb, i: composite_cursor(fb, *self.pointer_at_size(actions[i].pointer), self.sprite)  # noqa: E731
            first_frame = draw(resize_frames(np.asarray(first_frame)[None], h, w)[0], 0)
            if true_frames is not None:
                true = resize_frames(np.asarray(true_frames[: len(actions)]), h, w)
                true_frames = np.stack([draw(fb, i) for i, fb in enumerate(true)])
        return super()._rollout(first_frame, actions, seed, callback, true_frames)

    def generate_frame(self, latents: dict[int, torch.Tensor], actions: Sequence[FrameActions], target: int,
                       seed: int, timings: RolloutTimings | None = None, keep: bool = True) -> np.ndarray:
        """Frame ``target`` ``(H, W, 3)`` uint8 from the framebuffers before it and the recent input.

        ``latents`` maps frame index -> framebuffer ``(3, H, W)`` and must hold the frames the model
        reads (:meth:`DeskDeltaModel.context_ids`); ``actions`` needs records up to ``target``. With ``keep`` the new framebuffer
        joins ``latents``.
        """
        cfg = self.model.config
        t0 = time.perf_counter()
        if self.recall == "alone":  # the network is not run: its inputs are not built either
            t1 = time.perf_counter()
            fb = self._recalled(latents, actions, target)
        else:
            ctx = torch.stack([latents[i] for i in self.model.context_ids(target)])[None]  # (1, K, 3, H, W)
            maps, vectors = self.model.inputs([step_window(list(actions[: target + 1]), target, cfg["history"])],
                                              self.screen)
            t1 = time.perf_counter()
            logits, colour = self.model(ctx, torch.from_numpy(maps).to(self.device),
                                        torch.from_numpy(vectors).to(self.device))
            # back on the 8-bit grid at every step, as a real framebuffer: a sub-level colour change where
            # the gate opened needlessly vanishes instead of adding up over a long rollout
            fb = DeskDeltaModel.combine(ctx[:, -1], logits, colour, hard=True, threshold=self.gate_threshold)[0]
            fb = (fb * 255).round() / 255
            if self.recall == "over-network":
                fb = self._recalled(latents, actions, target, over=fb)
        if keep:
            latents[target] = fb
        t2 = time.perf_counter()
        frame = self.show(fb, actions[target].pointer)
        t3 = time.perf_counter()
        if timings is not None:
            timings.record(t0, t1, t2, t3)
        return frame

    def _recalled(self, latents: dict[int, torch.Tensor], actions: Sequence[FrameActions], target: int,
                  over: torch.Tensor | None = None) -> torch.Tensor:
        """The framebuffer ``(3, H, W)`` the memory recalls for ``target``: its change pasted onto
        ``over`` (default: a copy of the framebuffer before it). The framebuffer two back, when
        ``latents`` holds it, and its step's input are the sequence key's "step before"."""
        to_u8 = lambda fb: (fb.permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)  # noqa: E731
        h = self.memory.history

        def window(t: int) -> list[FrameActions]:  # the input of the step into frame t (the last records)
            return step_window(list(actions[max(0, t - h): t + 1]), min(t, h), h)

        previous = latents[target - 1]
        before = to_u8(previous)
        step_before = (to_u8(latents[target - 2]), window(target - 1)) if target >= 2 and target - 2 in latents \
            else None

        def past(k: int) -> np.ndarray | None:  # the framebuffer k steps before `before`
            return to_u8(latents[target - 1 - k]) if target - 1 - k in latents else None

        change, _ = self.memory.recall(before, window(target), self.screen, step_before, past)
        if change is None:
            return previous if over is None else over
        pasted = change.apply(before if over is None else to_u8(over))
        return torch.from_numpy(pasted).to(self.device).float().div(255).permute(2, 0, 1)

    @torch.no_grad()
    def rollout(self, first_frame: np.ndarray, actions: Sequence[FrameActions], seed: int = 0,
                callback: Callable[[int, int], None] | None = None,
                true_frames: np.ndarray | None = None) -> tuple[np.ndarray, RolloutTimings]:
        """Frames ``(T, H, W, 3)`` uint8 (cursor drawn in) for ``T = len(actions)`` action records.

        ``first_frame`` is a cursor-free screenshot; ``true_frames`` ``(T, H0, W0, 3)``, when given, are
        the true cursor-free framebuffers and each frame is predicted from them (teacher forcing).
        """
        if not len(actions):
            raise NCError("rollout: no action records (expected one per frame)")
        with deterministic_algorithms(self.deterministic):
            frames, timings = self._rollout(first_frame, actions, seed, callback, true_frames)
        frames[0] = self.show(frames[0], actions[0].pointer)  # frame 0 is the screenshot: add the arrow
        return frames, timings

