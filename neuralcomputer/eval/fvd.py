"""Fréchet Video Distance as the paper defines it: R3D-18 (Kinetics-400) pre-logit features.

Every clip becomes 16 frames (uniformly subsampled with ``np.linspace`` over its length, or padded
by repeating its last frame), each frame is resized to 112x112 (bilinear, antialiased: desktop and
terminal frames are 5-9x larger and full of thin text strokes that plain bilinear would alias), then
normalised with the Kinetics mean/std and laid out ``(B, C, T, H, W)``. The network's 512-d output
after global average pooling (the input of ``fc``) is the feature; FVD is the Fréchet distance
between the Gaussians fitted to the two feature sets.

The resize goes straight to 112x112 (aspect ratio not kept), as the paper states it; torchvision's
own Kinetics preset instead resizes to 128x171 and centre-crops 112, which would cut the screen's
edges. Numbers are comparable only between runs of this same recipe.

``R3D18`` re-implements torchvision's ``r3d_18`` in plain torch (no torchvision here) with the same
module tree, so ``r3d_18-b3b3357e.pth`` loads unchanged:
``stem.0.weight`` (64, 3, 3, 7, 7), ``stem.1.{weight,bias,running_mean,running_var,num_batches_tracked}``,
``layer{1..4}.{0,1}.conv1.0.weight``, ``...conv1.1.*`` (BN), ``...conv2.0.weight``, ``...conv2.1.*``,
``layer{2,3,4}.0.downsample.0.weight`` (1x1x1, stride 2), ``...downsample.1.*``, ``fc.weight`` (400, 512),
``fc.bias``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence

import numpy as np
import scipy.linalg
import torch
import torch.nn.functional as F
from torch import nn

from neuralcomputer.errors import NCError
from neuralcomputer.eval.weights import load_exact, load_state_dict

CLIP_FRAMES = 16
CLIP_SIZE = 112
KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)


def _conv3x3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv3d:
    return nn.Conv3d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


class _BasicBlock(nn.Module):
    """torchvision's video ``BasicBlock`` with ``Conv3DSimple`` (3x3x3, stride in time and space)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(
            _conv3x3x3(in_channels, out_channels, stride), nn.BatchNorm3d(out_channels), nn.ReLU()
        )
        self.conv2 = nn.Sequential(_conv3x3x3(out_channels, out_channels), nn.BatchNorm3d(out_channels))
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv3d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm3d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        return F.relu(self.conv2(self.conv1(x)) + residual)


class R3D18(nn.Module):
    """torchvision's ``r3d_18`` (Tran et al. 2018): ``(B, 3, T, H, W)`` -> ``(B, num_classes)`` logits.

    ``features`` returns the 512-d pre-logit vector FVD uses. On a 16x112x112 clip the feature map
    before pooling is ``(B, 512, 2, 7, 7)``.
    """

    def __init__(self, num_classes: int = 400) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv3d(3, 64, kernel_size=(3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3), bias=False),
            nn.BatchNorm3d(64),
            nn.ReLU(),
        )
        self.layer1 = nn.Sequential(_BasicBlock(64, 64), _BasicBlock(64, 64))
        self.layer2 = nn.Sequential(_BasicBlock(64, 128, stride=2), _BasicBlock(128, 128))
        self.layer3 = nn.Sequential(_BasicBlock(128, 256, stride=2), _BasicBlock(256, 256))
        self.layer4 = nn.Sequential(_BasicBlock(256, 512, stride=2), _BasicBlock(512, 512))
        self.fc = nn.Linear(512, num_classes)

    @classmethod
    def from_weights(cls, path: str | os.PathLike[str]) -> R3D18:
        """Load torchvision's ``r3d_18-b3b3357e.pth`` (or any state dict with the same keys)."""
        state = load_state_dict(path)
        num_classes = state["fc.weight"].shape[0] if "fc.weight" in state else 400
        model = cls(num_classes)
        # Checkpoints saved before PyTorch 0.4.1 lack BatchNorm's step counter; eval never reads it.
        for key in model.state_dict():
            if key.endswith(".num_batches_tracked") and key not in state:
                state[key] = torch.zeros((), dtype=torch.long)
        load_exact(model, state, path, "an r3d_18 state dict")
        model.requires_grad_(False)
        return model.eval()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, T, H, W)`` normalised clips -> ``(B, 512)`` globally averaged features."""
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return x.mean(dim=(2, 3, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


def subsample_or_pad(frames: np.ndarray, n: int = CLIP_FRAMES) -> np.ndarray:
    """``(T, H, W, C)`` -> ``(n, H, W, C)``: ``np.linspace`` indices when ``T >= n``, else repeat the last frame."""
    frames = np.asarray(frames)
    if frames.ndim < 1 or len(frames) == 0:
        raise NCError("cannot make a clip from zero frames")
    t = len(frames)
    if t >= n:
        return frames[np.linspace(0, t - 1, n).round().astype(np.int64)]
    return np.concatenate([frames, np.repeat(frames[-1:], n - t, axis=0)], axis=0)


def preprocess_clip(frames: np.ndarray) -> torch.Tensor:
    """``(T, H, W, 3)`` uint8 -> ``(3, 16, 112, 112)`` float, Kinetics-normalised, ready for ``R3D18``."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise NCError(f"expected a uint8 clip shaped (T, H, W, 3), got {frames.dtype} {frames.shape}")
    clip = subsample_or_pad(frames, CLIP_FRAMES)
    x = torch.from_numpy(np.ascontiguousarray(clip)).permute(0, 3, 1, 2).float() / 255.0  # (T, C, H, W)
    if x.shape[-2:] != (CLIP_SIZE, CLIP_SIZE):
        x = F.interpolate(x, size=(CLIP_SIZE, CLIP_SIZE), mode="bilinear", align_corners=False, antialias=True)
    mean = torch.tensor(KINETICS_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(KINETICS_STD).view(1, 3, 1, 1)
    return ((x - mean) / std).permute(1, 0, 2, 3).contiguous()  # (C, T, H, W)


@torch.no_grad()
def fvd_features(clips: Sequence[np.ndarray] | np.ndarray, model: R3D18, batch_size: int = 4) -> np.ndarray:
    """R3D-18 pre-logit features of each clip: N clips ``(T, H, W, 3)`` uint8 -> ``(N, 512)`` float64."""
    if len(clips) == 0:
        raise NCError("no clips to embed")
    out = []
    for start in range(0, len(clips), batch_size):
        batch = torch.stack([preprocess_clip(c) for c in clips[start : start + batch_size]])  # (B, C, T, H, W)
        out.append(model.features(batch).double().numpy())
    return np.concatenate(out, axis=0)


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """Fréchet distance ``||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))`` between two Gaussians.

    Like the reference FID code: if ``sqrtm`` of the product is not finite, or its diagonal has an
    imaginary part above 1e-3 (singular covariances, e.g. fewer samples than dimensions), ``eps * I``
    is added to both covariances and it is tried once more; the imaginary round-off left is dropped.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise NCError(f"mismatched Gaussian shapes: {mu1.shape}, {sigma1.shape}, {mu2.shape}, {sigma2.shape}")
    diff = mu1 - mu2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns on singular input; we check the result instead
        covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
        if not _usable_sqrt(covmean):
            offset = np.eye(sigma1.shape[0]) * eps
            covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if not _usable_sqrt(covmean):
        worst = float(np.max(np.abs(np.diagonal(covmean).imag))) if np.isfinite(covmean).all() else float("nan")
        raise NCError(f"covariance square root is unusable (imaginary diagonal up to {worst:.3g}); degenerate features?")
    covmean = covmean.real
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean)
    return float(value)


def _usable_sqrt(covmean: np.ndarray) -> bool:
    """Finite, and any imaginary part on the diagonal (all the trace sees) is round-off."""
    if not np.isfinite(covmean).all():
        return False
    return not np.iscomplexobj(covmean) or bool(np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3))


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(D,)`` and unbiased covariance ``(D, D)`` of ``(N, D)`` features (N >= 2)."""
    features = np.asarray(features, np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise NCError(f"need at least 2 feature vectors shaped (N, D), got {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def fvd_from_features(pred_features: np.ndarray, ref_features: np.ndarray) -> float:
    """FVD between two ``(N, 512)`` feature sets (N may differ between the sets)."""
    mu1, sigma1 = gaussian_stats(pred_features)
    mu2, sigma2 = gaussian_stats(ref_features)
    return frechet_distance(mu1, sigma1, mu2, sigma2)


def fvd(
    pred_clips: Sequence[np.ndarray] | np.ndarray,
    ref_clips: Sequence[np.ndarray] | np.ndarray,
    model: R3D18,
    batch_size: int = 4,
) -> float:
    """FVD between generated and reference clips (each ``(T, H, W, 3)`` uint8, at least 2 per set).

    With fewer clips than feature dimensions (512) the covariances are singular and the estimate is
    biased upwards; the paper's numbers come from hundreds of clips.
    """
    return fvd_from_features(fvd_features(pred_clips, model, batch_size), fvd_features(ref_clips, model, batch_size))
