"""LPIPS (Zhang et al. 2018), AlexNet trunk, version 0.1, in plain torch.

Written by hand because the ``lpips`` package and torchmetrics' LPIPS both import torchvision,
which this project does not install. The computation follows the ``lpips`` package exactly:

1. inputs in [-1, 1] go through the scaling layer ``(x - shift) / scale`` with
   shift ``[-.030, -.088, -.188]`` and scale ``[.458, .448, .450]``;
2. AlexNet's ``features`` give five activations, the outputs of its five ReLUs
   (64, 192, 384, 256, 256 channels);
3. each is unit-normalised over channels (``x / (||x||_2 + 1e-10)``), the two images' features are
   subtracted and squared;
4. a 1x1 convolution without bias (``lin0`` .. ``lin4``, one output channel) weighs the channels,
   the result is averaged over space and summed over the five layers.

Weights (see ``neuralcomputer.eval.weights``): torchvision's ``alexnet-owt-7be5be79.pth``, of which
only the ``features.{0,3,6,8,10}.{weight,bias}`` entries are used, and the ``lpips`` package's
``weights/v0.1/alex.pth`` with keys ``lin{0..4}.model.1.weight`` shaped ``(1, C, 1, 1)``.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn

from neuralcomputer.errors import NCError
from neuralcomputer.eval.weights import load_exact, load_state_dict

ALEX_CHANNELS = (64, 192, 384, 256, 256)
# Indices in torchvision's ``alexnet().features`` right after which LPIPS taps an activation
# (the five ReLUs); the final max-pool (index 12) is never used.
_TAP_AFTER = (1, 4, 7, 9, 11)


class AlexNetFeatures(nn.Module):
    """torchvision's ``AlexNet.features``, layer for layer, so its ``features.*`` keys load unchanged.

    ``forward`` maps ``(B, 3, H, W)`` to the five ReLU outputs, the largest ``(B, 64, H/4, W/4)``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),  # 0
            nn.ReLU(),  # 1 -> tap
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),  # 3
            nn.ReLU(),  # 4 -> tap
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),  # 6
            nn.ReLU(),  # 7 -> tap
            nn.Conv2d(384, 256, kernel_size=3, padding=1),  # 8
            nn.ReLU(),  # 9 -> tap
            nn.Conv2d(256, 256, kernel_size=3, padding=1),  # 10
            nn.ReLU(),  # 11 -> tap
            nn.MaxPool2d(kernel_size=3, stride=2),  # 12, kept only so indices match torchvision
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps = []
        for index, layer in enumerate(self.features[: _TAP_AFTER[-1] + 1]):
            x = layer(x)
            if index in _TAP_AFTER:
                taps.append(x)
        return taps


class _LinLayer(nn.Module):
    """One LPIPS 1x1 weighting; ``model.1`` so the lpips package's ``lin{i}.model.1.weight`` loads."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        # The lpips package has Dropout at index 0; at evaluation it is the identity.
        self.model = nn.Sequential(nn.Identity(), nn.Conv2d(channels, 1, kernel_size=1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def _unit_normalise(x: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    return x / (torch.sqrt(torch.sum(x * x, dim=1, keepdim=True)) + eps)


class LPIPS(nn.Module):
    """LPIPS v0.1 with the AlexNet trunk: ``model(x0, x1)`` with ``(B, 3, H, W)`` in [-1, 1] -> ``(B,)``."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))
        self.net = AlexNetFeatures()
        self.lin0 = _LinLayer(ALEX_CHANNELS[0])
        self.lin1 = _LinLayer(ALEX_CHANNELS[1])
        self.lin2 = _LinLayer(ALEX_CHANNELS[2])
        self.lin3 = _LinLayer(ALEX_CHANNELS[3])
        self.lin4 = _LinLayer(ALEX_CHANNELS[4])
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def from_weights(
        cls, alexnet_path: str | os.PathLike[str], lin_path: str | os.PathLike[str]
    ) -> LPIPS:
        """Build from torchvision's AlexNet checkpoint and the lpips package's ``alex.pth``."""
        model = cls()
        alex = load_state_dict(alexnet_path)
        features = {k: v for k, v in alex.items() if k.startswith("features.")}
        load_exact(model.net, features, alexnet_path)
        lins = load_state_dict(lin_path)
        for i in range(len(ALEX_CHANNELS)):
            key = f"lin{i}.model.1.weight"
            if key not in lins:
                raise NCError(f"{lin_path}: missing {key} (expected the lpips package's v0.1 alex.pth)")
            load_exact(getattr(model, f"lin{i}"), {"model.1.weight": lins[key]}, lin_path)
        return model

    def forward(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        taps0 = self.net((x0 - self.shift) / self.scale)
        taps1 = self.net((x1 - self.shift) / self.scale)
        total = x0.new_zeros(x0.shape[0])
        for i, (f0, f1) in enumerate(zip(taps0, taps1, strict=True)):
            diff = (_unit_normalise(f0) - _unit_normalise(f1)) ** 2  # (B, C_i, H_i, W_i)
            total = total + getattr(self, f"lin{i}")(diff).mean(dim=(1, 2, 3))
        return total


def _frames_to_unit_range(frames: np.ndarray) -> torch.Tensor:
    """``(F, H, W, 3)`` uint8 -> ``(F, 3, H, W)`` float in [-1, 1] (the paper: "frames in [-1,1]")."""
    if frames.dtype != np.uint8:
        raise NCError(f"LPIPS expects uint8 frames, got {frames.dtype}")
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


@torch.no_grad()
def lpips_per_frame(pred: np.ndarray, ref: np.ndarray, model: LPIPS, batch_size: int = 8) -> np.ndarray:
    """LPIPS of every frame: ``(T, H, W, 3)`` uint8 -> ``(T,)``, ``(N, T, H, W, 3)`` -> ``(N, T)``."""
    pred, ref = np.asarray(pred), np.asarray(ref)
    if pred.shape != ref.shape or pred.ndim not in (4, 5) or pred.shape[-1] != 3:
        raise NCError(f"expected matching (T, H, W, 3) clips, got {pred.shape} and {ref.shape}")
    lead = pred.shape[:-3]
    p, r = pred.reshape(-1, *pred.shape[-3:]), ref.reshape(-1, *ref.shape[-3:])
    if len(p) == 0:
        raise NCError("no frames to score")
    out = np.empty(len(p), dtype=np.float64)
    for start in range(0, len(p), batch_size):
        sl = slice(start, start + batch_size)
        out[sl] = model(_frames_to_unit_range(p[sl]), _frames_to_unit_range(r[sl])).double().numpy()
    return out.reshape(lead)


def lpips_video(pred: np.ndarray, ref: np.ndarray, model: LPIPS, batch_size: int = 8) -> float:
    """Mean over frames (and clips) of the per-frame LPIPS; 0 for identical clips, lower is better."""
    return float(np.mean(lpips_per_frame(pred, ref, model, batch_size)))
