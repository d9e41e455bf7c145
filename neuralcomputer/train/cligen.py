"""The CLIGen training tasks: :class:`TokenizerTask` (the cell autoencoder, ``cell-ae`` preset: MSE + L1
over character cells, a fixed share of them with ink, with noise on the latents) and
:class:`CLIGenTask` (Wan's rectified-flow loss on clip latents, caption dropout for classifier-free
guidance, validation by sampling held-out clips and reading them back).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from neuralcomputer.data.dataset import read_clip_payload
from neuralcomputer.data.torch_dataset import frames_to_tensor, resize_frames, to_uint8_frames
from neuralcomputer.diffusion.flow import NUM_TRAIN_TIMESTEPS, flow_loss, noisy_latents, sample_sigmas
from neuralcomputer.errors import NCError
from neuralcomputer.models.cligen import CLIGenModel, build_tokenizer, save_tokenizer
from neuralcomputer.train.common import frame_scores, step_generator
from neuralcomputer.train.data import (
    TIERS,
    LatentCache,
    check_dataset,
    example_indices,
    load_clip_frames,
)


class TokenizerTask:
    """Train the cell autoencoder tokenizer."""

    def __init__(self, config: dict[str, Any], data: Path, run: Path, progress: bool = True) -> None:
        self.config, self.data, self.run = config, Path(data), Path(run)
        m, t = config["model"], config["train"]
        self.records = check_dataset(self.data, m, None, ())
        self.val_records = check_dataset(self.data, m, None, (), split="val", required=False)[: max(1, t["val_clips"])]
        self.module = build_tokenizer({**m["tokenizer"], "path": None})
        self.size = (m["height"], m["width"])
        cell = tuple(m["tokenizer"]["cell"])
        # Cells of the unique frames of up to 200 clips (~0.5 GB): enough variety of glyphs and colours.
        frames = np.concatenate([resize_frames(read_clip_payload(self.data / r["path"])["unique_frames"], m["height"],
                                               m["width"]) for r in self.records[:200]])
        n, h, w, _ = frames.shape
        ch, cw = cell
        cells = frames.reshape(n, h // ch, ch, w // cw, cw, 3).transpose(0, 1, 3, 5, 2, 4).reshape(-1, 3, ch, cw)
        flat = cells.reshape(len(cells), -1)
        has_ink = flat.max(1) != flat.min(1)
        self.cells, self.ink, self.blank = cells, np.flatnonzero(has_ink), np.flatnonzero(~has_ink)
        if len(self.ink) == 0:
            raise NCError(f"{self.data}: no cell with any ink in the training frames")
        self.norm_frames = frames[np.linspace(0, n - 1, min(n, 64)).astype(int)]

    def batch(self, step: int, rank: int, world: int, micro: int, batch_size: int) -> tuple[dict, int]:
        """Cells ``x`` ``(N, 3, ch, cw)`` (and latent ``noise``) of one micro-batch."""
        t = self.config["train"]
        rng = np.random.default_rng([t["seed"], step, rank, micro])
        n_ink = int(batch_size * t.get("ink_fraction", 0.75))
        blank = rng.choice(self.blank, batch_size - n_ink) if len(self.blank) else rng.choice(self.ink, batch_size - n_ink)
        idx = np.concatenate([rng.choice(self.ink, n_ink), blank])
        batch = {"x": torch.from_numpy(self.cells[idx]).float().div(255.0)}
        if t["latent_noise"] > 0:
            gen = step_generator(t["seed"], step, rank * 1000 + micro)
            batch["noise"] = torch.randn((batch_size, self.module.latent_channels, 1, 1), generator=gen)
        return batch, batch_size

    def compute_loss(self, module: nn.Module, batch: dict) -> torch.Tensor:
        device = module.latents_mean.device
        x = batch["x"].to(device)
        z = module.encode_raw(x)
        if "noise" in batch:
            # The diffusion model's latents are never exact: a decoder trained on noisy latents
            # maps near misses to the right glyph (or a blank) instead of a blend of glyphs.
            scale = z.detach().std(dim=(0, 2, 3), keepdim=True)
            z = z + self.config["train"]["latent_noise"] * scale * batch["noise"].to(device)
        y = module.decode_raw(z)
        # L1 beside MSE: it drives the many exactly-flat (blank) cells to exactly flat, where MSE
        # alone leaves faint glyph-shaped residue that an OCR reads as characters.
        return (y - x).square().mean() + 0.1 * (y - x).abs().mean()

    @torch.no_grad()
    def validate(self, module: nn.Module, step: int) -> dict[str, float]:
        if not self.val_records:
            return {}
        scores = []
        for r in self.val_records:
            frames = resize_frames(read_clip_payload(self.data / r["path"])["unique_frames"][:8], *self.size)
            pred = to_uint8_frames(module.decode(module.encode(frames_to_tensor(frames)[None]))[0])
            scores.append(frame_scores(pred, frames, text=r.get("grid") is not None))  # desktops have no grid
        return {k: float(np.mean([s[k] for s in scores])) for k in scores[0]}

    def export(self, module: nn.Module, path: Path) -> None:
        module.fit_normalisation(frames_to_tensor(self.norm_frames))
        save_tokenizer(module, path, self.config["model"])


class CLIGenTask:
    """Train a CLIGen model on a clip dataset."""

    def __init__(self, config: dict[str, Any], data: Path, run: Path, progress: bool = True) -> None:
        self.config, self.data, self.run = config, Path(data), Path(run)
        m, t = config["model"], config["train"]
        tiers = TIERS if t["tier"] == "mixed" else (t["tier"],)
        self.tiers = tiers
        max_len = m["text"].get("max_len") if m["text"]["kind"] == "bytes" else None
        self.records = check_dataset(self.data, m, max_len, tiers)
        self.val_records = check_dataset(self.data, m, max_len, tiers, split="val", required=False)[: t["val_clips"]]
        self.module = CLIGenModel(m)
        if t["gradient_checkpointing"]:
            self.module.transformer.enable_gradient_checkpointing()
        self.cache = None
        cacheable = self.module.tokenizer.temporal_ratio == 1 and self.module.image_encoder is None
        if t["cache_latents"] and cacheable:
            self.cache = LatentCache.build(self.run / "cache", self.data, self.records, self.module.tokenizer,
                                           m["num_frames"], m["frame_stride"], progress=progress)

    def _batch(self, indices: list[int], gen: torch.Generator, dropout: float) -> dict:
        m = self.config["model"]
        tier_pick = torch.randint(len(self.tiers), (len(indices),), generator=gen).tolist()
        drop = (torch.rand(len(indices), generator=gen) < dropout).tolist()
        captions = ["" if d else self.records[i]["captions"][self.tiers[k]]
                    for i, k, d in zip(indices, tier_pick, drop, strict=True)]
        if self.cache is not None:
            x0 = torch.from_numpy(np.stack([np.asarray(self.cache.latents[i]) for i in indices])).float()
            first = None
        else:
            frames = torch.stack([frames_to_tensor(load_clip_frames(self.data, self.records[i], m["num_frames"],
                                                                    m["frame_stride"])) for i in indices])
            with torch.no_grad():
                x0 = self.module.tokenizer.encode(frames)
            first = frames[:, 0]
        return {"x0": x0, "first": first, "captions": captions}

    def _add_noise(self, batch: dict, gen: torch.Generator) -> dict:
        x0 = batch["x0"]
        batch["noise"] = torch.randn(x0.shape, generator=gen)
        batch["sigma"] = sample_sigmas(len(x0), self.config["model"]["flow_shift"], gen)
        return batch

    def batch(self, step: int, rank: int, world: int, micro: int, batch_size: int) -> tuple[dict, int]:
        """Latents ``x0``, first frames (when not cached), captions, noise and noise levels of one micro-batch."""
        t = self.config["train"]
        per_step = batch_size * world * t["grad_accum"]
        start = step * per_step + (micro * world + rank) * batch_size
        indices = example_indices(len(self.records), t["seed"], start, batch_size)
        gen = step_generator(t["seed"], step, rank * 1000 + micro)
        return self._add_noise(self._batch(indices, gen, t["caption_dropout"]), gen), batch_size

    def compute_loss(self, module: CLIGenModel, batch: dict) -> torch.Tensor:
        """Wan's flow loss on one batch (runs inside the data-parallel wrapper's forward)."""
        device = next(module.transformer.parameters()).device
        x0 = batch["x0"].to(device)
        noise, sigma = batch["noise"].to(x0), batch["sigma"].to(device)
        first = None if batch["first"] is None else batch["first"].to(device)
        with torch.no_grad():
            cond = module.condition(first, None if first is not None else x0[:, :, :1])
        image = module.encode_image(first) if module.image_encoder is not None else None
        text = module.encode_text(batch["captions"])
        pred = module(noisy_latents(x0, noise, sigma), sigma * NUM_TRAIN_TIMESTEPS, cond, text, image)
        return flow_loss(pred, x0, noise)

    @functools.cached_property
    def _val_frames(self) -> list[np.ndarray]:
        """The validation clips' frames, read once per run rather than at every validation."""
        m = self.config["model"]
        return [load_clip_frames(self.data, r, m["num_frames"], m["frame_stride"]) for r in self.val_records]

    @torch.no_grad()
    def validate(self, module: CLIGenModel, step: int) -> dict[str, float]:
        from neuralcomputer.pipelines.cligen import CLIGenPipeline

        t = self.config["train"]
        if not self.val_records:
            return {}
        # validation loss at fixed sigmas and noise: comparable across steps
        gen = torch.Generator().manual_seed(12345)
        frames = self._val_frames
        video = torch.stack([frames_to_tensor(f) for f in frames])
        batch = {"x0": module.tokenizer.encode(video), "first": video[:, 0],
                 "captions": [r["captions"]["detailed"] for r in self.val_records]}
        val_loss = float(self.compute_loss(module, self._add_noise(batch, gen)))
        pipe = CLIGenPipeline(module, steps=t["val_steps"], deterministic=False,
                              device=next(module.transformer.parameters()).device)
        scores = []
        for i, (r, ref) in enumerate(zip(self.val_records, frames, strict=True)):
            pred = pipe.sample_frames(ref[:1], [r["captions"]["detailed"]], seed=i)[0]
            scores.append(frame_scores(pred[1:], ref[1:]))  # frame 0 is given, not generated
        module.train()
        out = {k: float(np.mean([s[k] for s in scores])) for k in scores[0]}
        return {"val_loss": val_loss, **out}

    def export(self, module: CLIGenModel, path: Path) -> None:
        module.save_pretrained(path)
