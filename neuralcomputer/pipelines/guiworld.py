"""GUIWorld rollouts: a desktop generated frame by frame from a first frame and an action stream.

Each new frame is sampled from noise conditioned on the last ``context_frames`` frames (a sliding
window: generated frames become context as latents, never re-encoded) and on the actions of the
window. Generated context is treated as slightly noisy (``rollout_context_noise``, the level the
model was trained to expect on its context) so that its own small errors do not compound into drift.
The context's keys and values are computed once per frame; the sampler's steps then run only the new
frame's tokens (:meth:`GUIWorldModel.context_pass` / :meth:`GUIWorldModel.target_pass`).

Deterministic: noise comes from CPU generators seeded by (seed, frame), so the same inputs and seed
give bit-identical frames on the same machine (with ``deterministic=True``, the default).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from neuralcomputer.data.desktop.actions import FrameActions, step_actions
from neuralcomputer.data.torch_dataset import frames_to_tensor, resize_frames, to_uint8_frames
from neuralcomputer.diffusion.flow import NUM_TRAIN_TIMESTEPS
from neuralcomputer.diffusion.sampling import deterministic_algorithms, make_scheduler
from neuralcomputer.errors import NCError
from neuralcomputer.models.actions import features_to_tensors, featurize
from neuralcomputer.models.guiworld import GUIWorldModel, cursor_reference
from neuralcomputer.pipelines.cligen import hold_frames, resolve_model_dir


@dataclass
class RolloutTimings:
    """Seconds spent per stage over a rollout (the benchmark's per-stage split)."""

    encode: float = 0.0
    context: float = 0.0  # the context pass (once per frame)
    denoise: float = 0.0  # the sampler's target-only passes
    decode: float = 0.0
    frames: int = 0
    per_frame: list[float] = field(default_factory=list)

    def record(self, t0: float, t1: float, t2: float, t3: float) -> None:
        """One frame's stage boundaries (``perf_counter`` readings): context, denoise, decode."""
        self.context += t1 - t0
        self.denoise += t2 - t1
        self.decode += t3 - t2
        self.per_frame.append(t3 - t0)


def window_ids(target: int, window: int, stride: int) -> list[int]:
    """Frame indices of the window ending at ``target``, padded with frame 0 before the start."""
    return [max(0, target - (window - 1 - j) * stride) for j in range(window)]


def window_actions(records: Sequence[FrameActions], ids: list[int], stride: int) -> list[FrameActions]:
    """The step actions leading to each frame of a window (:func:`step_actions`)."""
    return [step_actions(records, max(0, i - stride), i) for i in ids]


class GUIWorldRollout:
    """Generate desktop frames with a GUIWorld model: the API of ``ncomp rollout``, eval and the runtime.

    Args:
        model: a :class:`GUIWorldModel` (eval mode is set here).
        steps, sampler: denoising steps and sampler (default: the model config's).
        context_noise: the noise level of generated context (default: the config's rollout level).
    """

    def __init__(self, model: GUIWorldModel, steps: int | None = None, sampler: str | None = None,
                 context_noise: float | None = None, device: torch.device | str = "cpu",
                 deterministic: bool = True, cache: bool = True) -> None:
        cfg = model.config
        self.model = model.eval().to(device)
        self.device = torch.device(device)
        self.steps = steps or cfg["sample_steps"]
        self.sampler = sampler or cfg["sampler"]
        self.context_noise = cfg["rollout_context_noise"] if context_noise is None else context_noise
        self.deterministic = deterministic
        self.cache = cache  # False: every sampler step runs the whole window (for comparison; same frames)

    @classmethod
    def load(cls, path: str | Path, **kwargs) -> GUIWorldRollout:
        """From a run folder (its latest model), a checkpoint or an exported model directory."""
        return cls(GUIWorldModel.from_pretrained(resolve_model_dir(path)), **kwargs)

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of generated frames."""
        return self.model.config["height"], self.model.config["width"]

    @property
    def screen(self) -> tuple[int, int]:
        """(width, height) of the screen the actions' coordinates refer to."""
        s = self.model.config.get("screen")
        return (int(s[0]), int(s[1])) if s else (self.model.config["width"], self.model.config["height"])

    def _encode(self, frames: np.ndarray) -> torch.Tensor:
        """``(T, H, W, 3)`` uint8 at model size -> latents ``(T, C, h, w)``."""
        return self.model.tokenizer.encode(frames_to_tensor(frames)[None].to(self.device))[0].transpose(0, 1)

    @torch.no_grad()
    def rollout(self, first_frame: np.ndarray, actions: Sequence[FrameActions], seed: int = 0,
                callback: Callable[[int, int], None] | None = None,
                true_frames: np.ndarray | None = None) -> tuple[np.ndarray, RolloutTimings]:
        """Frames ``(T, H, W, 3)`` uint8 at model size for ``T = len(actions)`` action records.

        ``first_frame`` ``(H0, W0, 3)`` is frame 0 (resized to the model's size); record ``f`` holds the
        input sent after frame ``f`` and the pointer at frame ``f`` (the dataset's action format).
        With ``frame_stride`` s > 1 every s-th frame is generated and held for s frames.
        ``true_frames`` ``(T, H0, W0, 3)``: teacher-forced, each frame predicted from the *true* previous
        frames (one-step prediction, no drift), the instrument of short ablations.
        """
        if not len(actions):
            raise NCError("rollout: no action records (expected one per frame)")
        with deterministic_algorithms(self.deterministic):
            return self._rollout(first_frame, actions, seed, callback, true_frames)

    def encode_first(self, first_frame: np.ndarray) -> tuple[np.ndarray, torch.Tensor]:
        """Frame 0 at the model's size ``(H, W, 3)`` uint8 and its latents ``(C, h, w)``."""
        h, w = self.size
        first = resize_frames(np.asarray(first_frame)[None], h, w)
        return first[0], self._encode(first)[0]

    def generate_frame(self, latents: dict[int, torch.Tensor], actions: Sequence[FrameActions], target: int,
                       seed: int, timings: RolloutTimings | None = None, keep: bool = True) -> np.ndarray:
        """Frame ``target`` ``(H, W, 3)`` uint8, sampled from the window's earlier frames and actions.

        ``latents`` maps frame index -> ``(C, h, w)`` and must hold the window's frames before ``target``;
        ``actions`` needs records up to ``target``. With ``keep`` the new latents join ``latents``
        (a rollout); without, they are dropped (teacher forcing: the true frame stays). The noise depends
        only on ``(seed, target)``, so a rollout resumed from saved latents continues bit-identically.
        """
        cfg = self.model.config
        h, w = self.size
        k, stride = self.model.window, cfg["frame_stride"]
        t0 = time.perf_counter()
        ids = window_ids(target, k, stride)
        feats = features_to_tensors(featurize([window_actions(actions, ids, stride)], *self.screen,
                                              cfg["actions"].get("max_meta", 4)), self.device)
        action_tokens = self.model.encode_actions(feats)
        gen = torch.Generator().manual_seed(int(np.random.default_rng([seed, target]).integers(2**62)))
        context = torch.stack([latents[i] for i in ids[:-1]], dim=1)[None]  # (1, C, K-1, h, w)
        s = self.context_noise
        context = (1 - s) * context + s * torch.randn(context.shape, generator=gen).to(context)
        ctx_t = torch.full((1,), s * NUM_TRAIN_TIMESTEPS, device=self.device)
        reference = None
        if cfg["cursor_reference"]:
            ref = cursor_reference(np.asarray([actions[target].pointer]), self.screen, (w, h))
            reference = self._encode(ref).transpose(0, 1)[None]  # (1, C, 1, h, w)
        cache = self.model.context_pass(context, ctx_t, action_tokens) if self.cache else None
        t1 = time.perf_counter()
        scheduler = make_scheduler(self.sampler, cfg["flow_shift"])
        scheduler.set_timesteps(self.steps, device=self.device)
        c, (lh, lw) = self.model.tokenizer.latent_channels, self.model.latent_hw
        x = torch.randn((1, c, 1, lh, lw), generator=gen).to(self.device)
        for t in scheduler.timesteps:
            t_ = t.reshape(1).float().to(self.device)
            v = (self.model.target_pass(x, t_, action_tokens, cache, reference) if cache is not None
                 else self.model(x, t_, context, ctx_t, action_tokens, reference))
            x = scheduler.step(v, t, x, return_dict=False)[0]
        if keep:
            latents[target] = x[0, :, 0]
        t2 = time.perf_counter()
        frame = to_uint8_frames(self.model.tokenizer.decode(x, size=(h, w))[0])[0]
        t3 = time.perf_counter()
        if timings is not None:
            timings.record(t0, t1, t2, t3)
        return frame

    def _rollout(self, first_frame: np.ndarray, actions: Sequence[FrameActions], seed: int,
                 callback: Callable[[int, int], None] | None,
                 true_frames: np.ndarray | None) -> tuple[np.ndarray, RolloutTimings]:
        h, w = self.size
        stride = self.model.config["frame_stride"]
        timings = RolloutTimings()
        start = time.perf_counter()
        first, first_latents = self.encode_first(first_frame)
        latents = {0: first_latents}  # frame index -> (C, h, w): generated frames, never re-encoded
        if true_frames is not None:
            true = resize_frames(np.asarray(true_frames[: len(actions)]), h, w)
            latents = dict(enumerate(torch.cat([self._encode(true[i:i + 32]) for i in range(0, len(true), 32)])))
        timings.encode = time.perf_counter() - start
        generated = [first]  # frames 0, s, 2s, ...
        targets = list(range(stride, len(actions), stride))
        for n, target in enumerate(targets):
            generated.append(self.generate_frame(latents, actions, target, seed, timings,
                                                 keep=true_frames is None))
            if callback is not None:
                callback(n + 1, len(targets))
        timings.frames = len(targets)
        # frame i shows the one generated at or before it (i // s), as the data's frames are held
        return hold_frames(np.stack(generated), stride, len(actions)), timings
