"""Video tokenizers: frames <-> latents, one interface, three kinds.

* :class:`CellPixelTokenizer` -- exact and parameter-free: each character cell's pixels become one
  latent position (space-to-depth by the cell), so a glyph is never blurred. ``C = 3 * ch * cw``.
* :class:`CellAETokenizer` -- a light autoencoder over character cells (a strided conv whose kernel is
  the cell, then 1x1 layers), learned in minutes, compressing each cell to ``C`` channels (16 by
  default). It is the CPU presets' tokenizer: the measurements in ``benchmarks/README.md`` chose it.
* :class:`WanVAETokenizer` -- diffusers ``AutoencoderKLWan`` (the paper's Wan2.1 VAE: 8x spatial, 4x
  temporal), loaded from a local directory; a tiny random config serves tests.

Shapes at the boundary: frames ``(B, T, 3, H, W)`` float in [0, 1]; latents ``(B, C, T', h, w)``
normalised to roughly zero mean, unit variance (the diffusion model's working space). For the cell
tokenizers ``T' = T``, ``h = H / ch``, ``w = W / cw``; for the Wan VAE ``T' = 1 + (T - 1) / 4``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn

from neuralcomputer.errors import NCError


@runtime_checkable
class Tokenizer(Protocol):
    """What the diffusion model needs from a tokenizer."""

    latent_channels: int
    temporal_ratio: int  # frames per latent frame after the first (Wan: 4); mask channels in I2V

    def latent_shape(self, num_frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        """``(C, T', h, w)`` of the latents of a ``(T, 3, H, W)`` clip; raises NCError if the size does not fit."""
        ...

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """``(B, T, 3, H, W)`` in [0, 1] -> normalised latents ``(B, C, T', h, w)``."""
        ...

    def decode(self, latents: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        """Normalised latents ``(B, C, T', h, w)`` -> frames ``(B, T, 3, H, W)`` in [0, 1] (``size``: (H, W))."""
        ...


def _check_cells(height: int, width: int, cell: tuple[int, int], what: str) -> None:
    if height % cell[0] or width % cell[1]:
        raise NCError(f"{what}: frame size {width}x{height} is not a whole number of {cell[1]}x{cell[0]} cells "
                      "(render the data with the font size the preset expects, or change `cell`)")


def _to_cells(frames: torch.Tensor, cell: tuple[int, int]) -> torch.Tensor:
    """``(B, T, 3, H, W)`` -> ``(B*T, 3, H, W)`` (cells are then read by a strided conv or a reshape)."""
    b, t = frames.shape[:2]
    return frames.reshape(b * t, *frames.shape[2:])


def _from_frames(x: torch.Tensor, b: int, t: int) -> torch.Tensor:
    """``(B*T, C, h, w)`` -> ``(B, C, T, h, w)``."""
    return x.reshape(b, t, *x.shape[1:]).permute(0, 2, 1, 3, 4)


def _to_frames(z: torch.Tensor) -> tuple[torch.Tensor, int, int]:
    """``(B, C, T, h, w)`` -> ``(B*T, C, h, w)``."""
    b, c, t, h, w = z.shape
    return z.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w), b, t


class CellPixelTokenizer(nn.Module):
    """Exact: a cell's ``3 * ch * cw`` pixel values are its latent channels, scaled to [-1, 1]."""

    temporal_ratio = 1

    def __init__(self, cell: tuple[int, int] = (17, 8)) -> None:
        super().__init__()
        self.cell = tuple(cell)
        self.latent_channels = 3 * self.cell[0] * self.cell[1]

    def latent_shape(self, num_frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        _check_cells(height, width, self.cell, "cell-pixel tokenizer")
        return self.latent_channels, num_frames, height // self.cell[0], width // self.cell[1]

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        b, t, _, h, w = frames.shape
        self.latent_shape(t, h, w)
        x = _to_cells(frames, self.cell)
        ch, cw = self.cell
        # (N, 3, h*ch, w*cw) -> (N, 3*ch*cw, h, w): pixel_unshuffle needs a square factor, so reshape.
        n = x.shape[0]
        x = x.reshape(n, 3, h // ch, ch, w // cw, cw).permute(0, 1, 3, 5, 2, 4).reshape(n, 3 * ch * cw, h // ch, w // cw)
        return _from_frames(x * 2 - 1, b, t)

    def decode(self, latents: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        x, b, t = _to_frames(latents)
        ch, cw = self.cell
        n, _, gh, gw = x.shape
        x = x.reshape(n, 3, ch, cw, gh, gw).permute(0, 1, 4, 2, 5, 3).reshape(n, 3, gh * ch, gw * cw)
        x = ((x + 1) / 2).clamp(0, 1)
        return x.reshape(b, t, 3, gh * ch, gw * cw)


class CellAutoencoder(nn.Module):
    """Per-cell autoencoder: a conv whose kernel and stride are the character cell, then 1x1 layers.

    Each cell is coded on its own, so glyphs stay aligned to the grid and nothing bleeds between
    cells; ``context`` adds a 3x3 conv over neighbouring cells in the decoder (off by default: cells
    are independent in a terminal).
    """

    def __init__(self, cell: tuple[int, int] = (17, 8), latent_channels: int = 16, hidden: int = 256) -> None:
        super().__init__()
        ch, cw = cell
        self.encoder = nn.Sequential(
            nn.Conv2d(3, hidden, kernel_size=(ch, cw), stride=(ch, cw)), nn.GELU(),
            nn.Conv2d(hidden, hidden, 1), nn.GELU(),
            nn.Conv2d(hidden, latent_channels, 1),
        )
        self.decoder = nn.Sequential(
            nn.Conv2d(latent_channels, hidden, 1), nn.GELU(),
            nn.Conv2d(hidden, hidden, 1), nn.GELU(),
            nn.ConvTranspose2d(hidden, 3, kernel_size=(ch, cw), stride=(ch, cw)),
        )


class CellAETokenizer(nn.Module):
    """A learned cell autoencoder with per-channel latent normalisation (``latents_mean``/``latents_std``).

    Train it with ``ncomp train --preset cell-ae``; the normalisation statistics are measured on the
    training frames at the end of training and saved with the weights.
    """

    temporal_ratio = 1

    def __init__(self, cell: tuple[int, int] = (17, 8), latent_channels: int = 16, hidden: int = 256) -> None:
        super().__init__()
        self.cell = tuple(cell)
        self.latent_channels = latent_channels
        self.hidden = hidden
        self.ae = CellAutoencoder(self.cell, latent_channels, hidden)
        self.register_buffer("latents_mean", torch.zeros(latent_channels))
        self.register_buffer("latents_std", torch.ones(latent_channels))

    def config(self) -> dict:
        return {"kind": "cell-ae", "cell": list(self.cell), "latent_channels": self.latent_channels,
                "hidden": self.hidden}

    def latent_shape(self, num_frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        _check_cells(height, width, self.cell, "cell-ae tokenizer")
        return self.latent_channels, num_frames, height // self.cell[0], width // self.cell[1]

    def _stats(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (1, -1, 1, 1)
        return self.latents_mean.view(shape).to(z.dtype), self.latents_std.view(shape).to(z.dtype)

    def encode_raw(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W)`` in [0, 1] -> unnormalised ``(N, C, h, w)``."""
        return self.ae.encoder(x * 2 - 1)

    def decode_raw(self, z: torch.Tensor) -> torch.Tensor:
        """Unnormalised ``(N, C, h, w)`` -> ``(N, 3, H, W)`` in about [0, 1] (not clamped: training sees it)."""
        return (self.ae.decoder(z) + 1) / 2

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        b, t, _, h, w = frames.shape
        self.latent_shape(t, h, w)
        z = self.encode_raw(_to_cells(frames, self.cell))
        mean, std = self._stats(z)
        return _from_frames((z - mean) / std, b, t)

    def decode(self, latents: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        z, b, t = _to_frames(latents)
        mean, std = self._stats(z)
        x = self.decode_raw(z * std + mean).clamp(0, 1)
        return x.reshape(b, t, *x.shape[1:])

    @torch.no_grad()
    def fit_normalisation(self, frames: torch.Tensor) -> None:
        """Set ``latents_mean``/``latents_std`` from ``(N, 3, H, W)`` frames."""
        z = self.encode_raw(frames)
        self.latents_mean.copy_(z.mean(dim=(0, 2, 3)))
        self.latents_std.copy_(z.std(dim=(0, 2, 3)).clamp_min(1e-4))


class WanVAETokenizer(nn.Module):
    """diffusers ``AutoencoderKLWan`` behind the tokenizer interface.

    Frames are padded by edge replication to a multiple of the VAE's spatial factor (and cropped back
    on decode), and the clip length must be ``1 + 4k``. Latents are normalised with the VAE config's
    ``latents_mean``/``latents_std`` exactly as Wan's pipelines do. Frozen: never trained here.
    """

    def __init__(self, vae: nn.Module) -> None:
        super().__init__()
        self.vae = vae.eval().requires_grad_(False)
        cfg = vae.config
        self.latent_channels = int(cfg.z_dim)
        self.spatial_ratio = 2 ** len(cfg.temperal_downsample)
        self.temporal_ratio = 2 ** sum(bool(x) for x in cfg.temperal_downsample)
        self.register_buffer("latents_mean", torch.tensor(cfg.latents_mean[: self.latent_channels]), persistent=False)
        self.register_buffer("latents_std", torch.tensor(cfg.latents_std[: self.latent_channels]), persistent=False)

    @classmethod
    def from_pretrained(cls, path: str | Path) -> WanVAETokenizer:
        """Load the real Wan2.1 VAE (or any AutoencoderKLWan) from a local directory; never downloads."""
        from diffusers import AutoencoderKLWan

        path = Path(path)
        if not (path / "config.json").is_file():
            raise NCError(f"{path}: no AutoencoderKLWan here (expected config.json + weights, e.g. the `vae` "
                          "folder of a local Wan2.1 checkout)")
        return cls(AutoencoderKLWan.from_pretrained(path, local_files_only=True))

    @classmethod
    def tiny_random(cls, seed: int = 0) -> WanVAETokenizer:
        """A tiny random AutoencoderKLWan (4 latent channels, 4x spatial, 2x temporal) for tests."""
        from diffusers import AutoencoderKLWan

        torch.manual_seed(seed)
        vae = AutoencoderKLWan(base_dim=8, z_dim=4, dim_mult=[1, 1, 2], num_res_blocks=1,
                               temperal_downsample=[False, True], latents_mean=[0.0] * 4, latents_std=[1.0] * 4)
        return cls(vae)

    def config(self) -> dict:
        return {"kind": "wan-vae", "vae": json.loads(json.dumps(dict(self.vae.config), default=list))}

    def _padded(self, height: int, width: int) -> tuple[int, int]:
        r = self.spatial_ratio
        return -(-height // r) * r, -(-width // r) * r

    def latent_shape(self, num_frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        if (num_frames - 1) % self.temporal_ratio:
            raise NCError(f"wan-vae tokenizer: {num_frames} frames; the Wan VAE needs 1 + {self.temporal_ratio}k")
        ph, pw = self._padded(height, width)
        return (self.latent_channels, 1 + (num_frames - 1) // self.temporal_ratio, ph // self.spatial_ratio,
                pw // self.spatial_ratio)

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        b, t, _, h, w = frames.shape
        self.latent_shape(t, h, w)
        ph, pw = self._padded(h, w)
        x = frames.permute(0, 2, 1, 3, 4) * 2 - 1  # (B, 3, T, H, W) in [-1, 1]
        if (ph, pw) != (h, w):
            x = F.pad(x, (0, pw - w, 0, ph - h, 0, 0), mode="replicate")
        z = self.vae.encode(x.to(self.vae.dtype)).latent_dist.mode().float()
        shape = (1, -1, 1, 1, 1)
        return (z - self.latents_mean.view(shape)) / self.latents_std.view(shape)

    def decode(self, latents: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        shape = (1, -1, 1, 1, 1)
        z = latents * self.latents_std.view(shape) + self.latents_mean.view(shape)
        x = self.vae.decode(z.to(self.vae.dtype)).sample.float()
        h, w = size or x.shape[-2:]
        x = ((x[..., :h, :w] + 1) / 2).clamp(0, 1)
        return x.permute(0, 2, 1, 3, 4)
