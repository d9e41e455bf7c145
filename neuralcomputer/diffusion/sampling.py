"""Samplers over the rectified flow: Euler and UniPC (diffusers schedulers), classifier-free guidance.

The denoiser is any callable ``(latents (B, C, T, h, w), timestep (B,)) -> velocity``; guidance runs the
conditional and unconditional passes as one batch of two. Initial noise comes from a CPU generator
seeded by the caller, so the same seed gives the same noise on every device.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

import torch

from neuralcomputer.diffusion.flow import NUM_TRAIN_TIMESTEPS
from neuralcomputer.errors import NCError

SAMPLERS = ("euler", "unipc")
Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def make_scheduler(name: str, shift: float):
    """A fresh diffusers scheduler for Wan's flow (``flow_shift`` = ``shift``)."""
    from diffusers import FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler

    if name == "euler":
        return FlowMatchEulerDiscreteScheduler(num_train_timesteps=NUM_TRAIN_TIMESTEPS, shift=shift)
    if name == "unipc":
        return UniPCMultistepScheduler(num_train_timesteps=NUM_TRAIN_TIMESTEPS, prediction_type="flow_prediction",
                                       use_flow_sigmas=True, flow_shift=shift)
    raise NCError(f"unknown sampler {name!r} (expected {' or '.join(SAMPLERS)})")


@torch.no_grad()
def sample(denoise: Denoiser, shape: tuple[int, ...], *, sampler: str = "unipc", steps: int = 20,
           shift: float = 3.0, generator: torch.Generator, device: torch.device | str = "cpu",
           dtype: torch.dtype = torch.float32, callback: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """Integrate from noise (sigma 1) to data: returns latents of ``shape``.

    ``callback(i, steps)`` is called after each step (progress bars, streaming).
    """
    scheduler = make_scheduler(sampler, shift)
    scheduler.set_timesteps(steps, device=device)
    latents = torch.randn(shape, generator=generator, dtype=torch.float32).to(device=device, dtype=dtype)
    for i, t in enumerate(scheduler.timesteps):
        timestep = t.expand(shape[0]).to(device)
        velocity = denoise(latents, timestep)
        latents = scheduler.step(velocity, t, latents, return_dict=False)[0]
        if callback is not None:
            callback(i + 1, steps)
    return latents


def guided(denoise_cond: Callable[[torch.Tensor, torch.Tensor, bool], torch.Tensor], scale: float) -> Denoiser:
    """Classifier-free guidance: ``v = v_uncond + scale * (v_cond - v_uncond)``; scale 1 skips the
    unconditional pass. ``denoise_cond(x, t, both)`` returns ``(2B, ...)`` [cond; uncond] when ``both``."""
    if scale == 1.0:
        return lambda x, t: denoise_cond(x, t, False)

    def denoise(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        v = denoise_cond(torch.cat([x, x]), torch.cat([t, t]), True)
        cond, uncond = v.chunk(2)
        return uncond + scale * (cond - uncond)

    return denoise



_DETERMINISTIC_LOCK = threading.Lock()
_deterministic_users = 0
_deterministic_before = False


@contextlib.contextmanager
def deterministic_algorithms(enabled: bool) -> Iterator[None]:
    """Enforce PyTorch's deterministic algorithms inside the block (restored after the last user).

    The switch is process-wide: blocks may overlap in threads (a server with several workers), so the
    flag is counted, not saved and restored per block: one block ending never turns it off under another
    that is still running. A non-deterministic block overlapping a deterministic one runs deterministic.
    """
    global _deterministic_users, _deterministic_before
    if not enabled:
        yield
        return
    with _DETERMINISTIC_LOCK:
        if _deterministic_users == 0:
            _deterministic_before = torch.are_deterministic_algorithms_enabled()
            torch.use_deterministic_algorithms(True)
        _deterministic_users += 1
    try:
        yield
    finally:
        with _DETERMINISTIC_LOCK:
            _deterministic_users -= 1
            if _deterministic_users == 0:
                torch.use_deterministic_algorithms(_deterministic_before)
