"""Wan's rectified flow: the straight noise path, its velocity target and shifted timesteps.

With data ``x0``, noise ``eps`` and noise level ``sigma`` in [0, 1]:
``x_sigma = (1 - sigma) * x0 + sigma * eps``; the model predicts the velocity ``eps - x0`` at
timestep ``1000 * sigma``. Wan shifts sigmas towards noise, ``s * u / (1 + (s - 1) * u)``, for
training (``u ~ U(0, 1)``) and sampling alike (``flow_shift``; 3.0 for 480p, 5.0 for 720p).
"""

from __future__ import annotations

import torch

NUM_TRAIN_TIMESTEPS = 1000


def shift_sigma(u: torch.Tensor, shift: float) -> torch.Tensor:
    """Wan's timestep shift of uniform ``u`` in [0, 1]."""
    return shift * u / (1 + (shift - 1) * u)


def sample_sigmas(batch: int, shift: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Training noise levels ``(batch,)``: shifted uniform, as Wan trains."""
    return shift_sigma(torch.rand(batch, generator=generator), shift)


def noisy_latents(x0: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """``(1 - sigma) x0 + sigma noise`` with ``sigma`` ``(B,)`` broadcast over ``(B, ...)``."""
    s = sigma.view(-1, *([1] * (x0.dim() - 1))).to(x0.dtype)
    return (1 - s) * x0 + s * noise


def velocity_target(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    return noise - x0


def flow_loss(pred: torch.Tensor, x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Mean squared error between the predicted and the true velocity (float32)."""
    return (pred.float() - velocity_target(x0, noise).float()).square().mean()
