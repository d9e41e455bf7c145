"""The GUIWorld training task: next-frame prediction on desktop episodes, under the one training loop.

An example is a window of ``context_frames + 1`` frames of an episode (every ``frame_stride``-th
frame, padded with the first frame at the episode's start, so a rollout can begin from one frame)
and the actions leading to each of them. The context latents are noised at a random level in
``[0, context_noise)`` (their tokens' timestep says which) so the model learns to read imperfect
context, as its own generated frames will be in a rollout. The loss is Wan's flow loss on the target
frame, weighted up by ``cursor_loss_weight`` on the latent cells the cursor covers.

Episodes are encoded once per run by the frozen tokenizer and kept in memory: per episode,
``(T, C, h, w)`` float16 latents of the frames and of the cursor references.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from neuralcomputer.data.desktop.actions import read_actions
from neuralcomputer.data.desktop.episode import load_episode, read_desktop_clip
from neuralcomputer.data.torch_dataset import frames_to_tensor
from neuralcomputer.diffusion.flow import NUM_TRAIN_TIMESTEPS, noisy_latents, sample_sigmas, velocity_target
from neuralcomputer.errors import NCError
from neuralcomputer.models.actions import features_to_tensors, featurize
from neuralcomputer.models.guiworld import GUIWorldModel, cursor_reference
from neuralcomputer.pipelines.guiworld import GUIWorldRollout, window_actions, window_ids
from neuralcomputer.train.common import frame_scores
from neuralcomputer.train.data import check_dataset, example_indices


def _episode_screen(records: list[dict], root: Path) -> tuple[int, int]:
    sizes = {(r["width"], r["height"]) for r in records}
    if len(sizes) != 1:
        raise NCError(f"{root}: desktop episodes of several screen sizes {sorted(sizes)}; train on one size")
    return sizes.pop()


class GUIWorldTask:
    """Train a GUIWorld model on a desktop dataset (``ncomp data collect-desktop``)."""

    def __init__(self, config: dict[str, Any], data: Path, run: Path, progress: bool = True) -> None:
        from tqdm import tqdm

        self.config, self.data, self.run = config, Path(data), Path(run)
        m, t = config["model"], config["train"]
        self.records = check_dataset(self.data, m, None, ())
        self.val_records = check_dataset(self.data, m, None, (), split="val", required=False)[: t["val_clips"]]
        for r in self.records + self.val_records:
            if "actions" not in r:
                raise NCError(f"{self.data}/{r['path']}: not a desktop episode (no actions); GUIWorld trains on "
                              "datasets from `ncomp data collect-desktop`")
        self.screen = _episode_screen(self.records + self.val_records, self.data)
        self.module = GUIWorldModel({**m, "screen": list(self.screen)})
        if t["gradient_checkpointing"]:
            raise NCError("gradient_checkpointing is not supported by GUIWorld's block loop yet")
        self.size = (m["height"], m["width"])
        self.episodes = [self._load(r) for r in tqdm(self.records, desc="encode episodes", unit="episode",
                                                     disable=not progress)]
        k, stride = self.module.window, m["frame_stride"]
        # every (episode, target frame) with at least one step of history; windows pad at the start
        self.examples = [(e, f) for e, ep in enumerate(self.episodes) for f in range(1, len(ep["actions"]))]
        if not self.examples:
            raise NCError(f"{self.data}: the episodes have no frame after their first")
        self.window, self.stride = k, stride

    @torch.no_grad()
    def _load(self, record: dict) -> dict[str, Any]:
        """One episode: latents of its frames and cursor references, its actions and cursor coverage."""
        m = self.config["model"]
        h, w = self.size
        actions = read_actions(self.data / record["actions"], float(record["fps"]))
        frames = read_desktop_clip(self.data / record["path"], (h, w), cursor="screen").frames()  # (T, h, w, 3)
        if len(actions) != len(frames):
            raise NCError(f"{self.data}/{record['actions']}: {len(actions)} action records for {len(frames)} frames")
        tok = self.module.tokenizer
        latents = np.concatenate([tok.encode(frames_to_tensor(frames[i:i + 32])[None])[0]
                                  .transpose(0, 1).numpy().astype(np.float16) for i in range(0, len(frames), 32)])
        pointer = np.asarray([a.pointer for a in actions], np.float32)
        refs = cursor_reference(pointer, self.screen, (w, h))  # (T, H, W, 3)
        ep: dict[str, Any] = {"latents": latents, "actions": actions}
        if m["cursor_reference"]:
            ep["reference"] = np.concatenate([tok.encode(frames_to_tensor(refs[i:i + 32])[None])[0].transpose(0, 1)
                                              .numpy().astype(np.float16) for i in range(0, len(refs), 32)])
        # cursor coverage of each latent cell, scaled so the arrow's densest cell is 1
        lh, lw = self.module.latent_hw
        cover = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(refs[..., 0]).float()[:, None], (lh, lw))[:, 0]
        ep["cover"] = (cover / cover.flatten(1).amax(1).clamp(min=1e-6)[:, None, None]).numpy().astype(np.float16)
        return ep

    def batch(self, step: int, rank: int, world: int, micro: int, batch_size: int) -> tuple[dict, int]:
        """Context/target latents, noise, noise levels, cursor references and action features of one micro-batch."""
        from neuralcomputer.train.common import step_generator

        t, m = self.config["train"], self.config["model"]
        per_step = batch_size * world * t["grad_accum"]
        start = step * per_step + (micro * world + rank) * batch_size
        gen = step_generator(t["seed"], step, rank * 1000 + micro)
        picks = [self.examples[i] for i in example_indices(len(self.examples), t["seed"], start, batch_size)]
        windows, ctx, tgt, ref, cover = [], [], [], [], []
        for e, f in picks:
            ep = self.episodes[e]
            ids = window_ids(f, self.window, self.stride)
            windows.append(window_actions(ep["actions"], ids, self.stride))
            ctx.append(ep["latents"][ids[:-1]])
            tgt.append(ep["latents"][ids[-1:]])
            cover.append(ep["cover"][ids[-1]])
            if "reference" in ep:
                ref.append(ep["reference"][ids[-1:]])

        def stack(arrays: list[np.ndarray]) -> torch.Tensor:  # (B, T, C, h, w) -> (B, C, T, h, w)
            return torch.from_numpy(np.stack(arrays)).float().transpose(1, 2)

        x0, context = stack(tgt), stack(ctx)
        aug = torch.rand(batch_size, generator=gen) * m["context_noise"]
        context = noisy_latents(context, torch.randn(context.shape, generator=gen), aug)
        batch = {"x0": x0, "noise": torch.randn(x0.shape, generator=gen),
                 "sigma": sample_sigmas(batch_size, m["flow_shift"], gen), "context": context,
                 "context_t": aug * NUM_TRAIN_TIMESTEPS, "reference": stack(ref) if ref else None,
                 "cover": torch.from_numpy(np.stack(cover)).float(),
                 "actions": featurize(windows, *self.screen, m["actions"].get("max_meta", 4))}
        return batch, batch_size

    def compute_loss(self, module: GUIWorldModel, batch: dict) -> torch.Tensor:
        """Flow loss on the target frame, weighted up on the cursor's cells (runs inside the DDP wrapper)."""
        device = next(module.transformer.parameters()).device
        x0, noise, sigma = batch["x0"].to(device), batch["noise"].to(device), batch["sigma"].to(device)
        actions = module.encode_actions(features_to_tensors(batch["actions"], device))
        reference = None if batch["reference"] is None else batch["reference"].to(device)
        pred = module(noisy_latents(x0, noise, sigma), sigma * NUM_TRAIN_TIMESTEPS, batch["context"].to(device),
                      batch["context_t"].to(device), actions, reference)
        err = (pred.float() - velocity_target(x0, noise).float()).square().mean(1)  # (B, 1, h, w)
        weight = 1 + module.config["cursor_loss_weight"] * batch["cover"].to(device)[:, None]
        return (err * weight).sum() / weight.sum()

    @functools.cached_property
    def _val_episodes(self) -> list[tuple[np.ndarray, list]]:
        """(frames at model size, action records) of the first ``val_frames`` frames of each val episode."""
        n = self.config["train"]["val_frames"]
        return [load_episode(self.data, r, n, self.size)[1:] for r in self.val_records]

    @torch.no_grad()
    def validate(self, module: GUIWorldModel, step: int) -> dict[str, float]:
        """Roll out each val episode from its first frame under its true actions; PSNR/SSIM of the generated frames."""
        if not self.val_records:
            return {}
        roll = GUIWorldRollout(module, device=next(module.transformer.parameters()).device, deterministic=False)
        scores = []
        for i, (ref, actions) in enumerate(self._val_episodes):
            pred, _ = roll.rollout(ref[0], actions, seed=i)
            scores.append(frame_scores(pred[1:], ref[1:], text=False))
        module.train()
        return {k: float(np.mean([s[k] for s in scores])) for k in scores[0]}

    def export(self, module: nn.Module, path: Path) -> None:
        """Write the model directory (config.json + safetensors per component)."""
        module.save_pretrained(path)
