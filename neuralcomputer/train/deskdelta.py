"""Training DeskDelta (``guiworld-delta`` preset): next cursor-free framebuffer from the previous ones.

Episodes are read once at the model's size as their distinct framebuffers (a mostly static desktop
has few), so an hour of episodes fits in memory. An example is (episode, frame t >= 1). Frames where
the framebuffer changes are drawn ``changed_boost`` times as often as the rest (NeuralOS trains on
state changes more often too): most steps of a desktop show nothing but the cursor moving, which the
compositor, not the model, draws.

Loss, on the pixels of the 256x192 frame:
* the gate: binary cross-entropy against "this pixel differs from the previous framebuffer", the
  changed and unchanged pixels weighted equally;
* the colour: L1 to the true pixel, changed and unchanged pixels weighted equally (where nothing
  changes the colour must stay the previous one, so a gate opened in error is harmless);
* the blended frame: L1 to the true framebuffer (keeps the two consistent where the gate is unsure).

Every export also stores the training episodes' transition memory beside the weights
(:mod:`~neuralcomputer.models.deskmemory`, unless ``recall.mode`` is ``off``); :func:`build_memory`
builds one for any DeskDelta model directory from any desktop dataset (``ncomp export --memory-data``).
"""

from __future__ import annotations

import functools
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from neuralcomputer.data.dataset import atomic_write_bytes
from neuralcomputer.data.desktop.actions import read_actions
from neuralcomputer.data.desktop.cursor import composite_cursor, cursor_sprite
from neuralcomputer.data.desktop.episode import READ_CURSOR_SCALE, read_desktop_clip
from neuralcomputer.errors import NCError
from neuralcomputer.models.deskdelta import DeskDeltaModel, step_window
from neuralcomputer.models.deskmemory import TransitionMemory
from neuralcomputer.pipelines.deskdelta import MEMORY_FILE
from neuralcomputer.train.common import cache_dir
from neuralcomputer.train.data import check_dataset


def read_episode(data: Path, record: dict, size: tuple[int, int], cache: Path) -> dict[str, Any]:
    """An episode's distinct framebuffers ``(U, H, W, 3)`` uint8 at ``size`` (height, width), cached
    in ``cache`` (decoding and resizing a 512x384 episode takes seconds), which one each frame shows
    (``index``, ``(T,)``) and its ``actions`` (T records)."""
    h, w = size
    cached = cache / f"{h}x{w}" / f"{record['id']}-{record['unique_frames']}.npz"
    if cached.is_file():
        with np.load(cached) as z:
            framebuffers, index = z["framebuffers"], z["index"]
    else:
        clip = read_desktop_clip(data / record["path"], size)
        if clip.cursor_drawn:
            raise NCError(f"{data}/{record['path']}: recorded with the cursor drawn in; DeskDelta needs "
                          "cursor-free framebuffers (collect again with this version)")
        framebuffers, index = clip.framebuffers, clip.index
        buf = io.BytesIO()
        np.savez(buf, framebuffers=framebuffers, index=index)  # uncompressed: loads at disk speed
        atomic_write_bytes(cached, buf.getvalue())
    actions = read_actions(data / record["actions"], float(record["fps"]))
    if len(actions) != len(index):
        raise NCError(f"{data}/{record['actions']}: {len(actions)} action records for {len(index)} frames")
    return {"framebuffers": framebuffers, "index": index, "actions": actions}


@functools.cache
def _read_sprite() -> Any:
    """The arrow as the data shows it, drawn once (every example of a drawn-cursor model needs it)."""
    return cursor_sprite(READ_CURSOR_SCALE)


def example(ep: dict[str, Any], t: int, model: DeskDeltaModel, screen: tuple[int, int]
            ) -> tuple[np.ndarray, np.ndarray, list]:
    """Step ``t`` of an episode (:func:`read_episode`) as the model reads it: the framebuffers before it
    ``(K, H, W, 3)``, the true one ``(H, W, 3)`` (uint8) and its input steps (oldest first). A model that
    draws the cursor itself (``cursor`` not ``composited``) reads and predicts them with the arrow in,
    at each frame's pointer, as the rollout shows them."""
    ids = [*model.context_ids(t), t]
    frames = ep["framebuffers"][ep["index"][ids]]  # (K + 1, H, W, 3)
    if model.learned_cursor:
        (sw, sh), (h, w) = screen, frames.shape[1:3]
        sprite = _read_sprite()
        frames = np.stack([composite_cursor(fb, ep["actions"][i].pointer[0] * w / sw,
                                            ep["actions"][i].pointer[1] * h / sh, sprite)
                           for fb, i in zip(frames, ids, strict=True)])
    return frames[:-1], frames[-1], step_window(ep["actions"], t, model.config["history"])


def episode_sources(datasets: Sequence[Path], model_cfg: dict[str, Any], work: Path, split: str = "train"
                    ) -> list[tuple[Path, dict[str, Any], Path]]:
    """``(dataset, record, cache folder)`` of every ``split`` episode of the desktop ``datasets``, each
    dataset checked for ``model_cfg`` before any episode is read (one clear NCError); ``work`` is where
    a cache goes when a dataset is read-only (:func:`cache_dir`)."""
    sources = []
    for root in map(Path, datasets):
        records = check_dataset(root, model_cfg, None, (), split=split)
        if any("actions" not in r for r in records):
            raise NCError(f"{root}: not a desktop dataset (records without actions)")
        cache = cache_dir(root, work, ".deskdelta-cache")
        sources += [(root, r, cache) for r in records]
    return sources


def build_memory(model_dir: Path, data: Path | Sequence[Path], split: str = "train", progress: bool = True
                 ) -> TransitionMemory:
    """A transition memory of the ``split`` episodes of ``data`` (one desktop dataset or several) for
    the DeskDelta model in ``model_dir`` (at its frame size and recall settings), saved there as
    ``memory.npz``; the settings, defaults filled in, are written into its ``config.json``. More or
    other episodes than the network was trained on are fine: recall reads no weights."""
    from neuralcomputer.models.cligen import read_model_config

    config = read_model_config(model_dir)
    if config.get("kind") != "guiworld-delta":
        raise NCError(f"{model_dir}: not a DeskDelta model (only guiworld-delta models recall)")
    m = config["model"]
    size = (m["height"], m["width"])
    sources = episode_sources([Path(data)] if isinstance(data, str | Path) else list(data), m, model_dir, split)
    memory = sources_memory(sources, size, m["screen"], m.get("recall", {}), progress)
    save_memory(memory, model_dir)
    return memory


def sources_memory(sources: Sequence[tuple[Path, dict[str, Any], Path]], size: tuple[int, int],
                   screen: Sequence[int], recall: dict[str, Any], progress: bool = False) -> TransitionMemory:
    """A transition memory of the episodes ``sources`` (:func:`episode_sources`), read at ``size`` (height,
    width) through their caches, for pointer coordinates of ``screen`` (width, height), with the recall
    settings ``recall``."""
    episodes = (read_episode(root, r, size, cache) for root, r, cache in tqdm(
        sources, desc="memory", unit="episode", disable=not progress))
    return TransitionMemory.build(((e["framebuffers"], e["index"], e["actions"]) for e in episodes),
                                  tuple(screen), recall)


def save_memory(memory: TransitionMemory, model_dir: Path) -> None:
    """``memory.npz`` into a model directory, and the settings it was built and is read with into its
    ``config.json`` (defaults filled in: a later change of the defaults cannot change this model)."""
    from neuralcomputer.models.cligen import read_model_config

    memory.save(model_dir / MEMORY_FILE)
    config = read_model_config(model_dir)
    config["model"]["recall"] = {**memory.config, "mode": config["model"].get("recall", {}).get("mode", "alone")}
    atomic_write_bytes(model_dir / "config.json", json.dumps(config, indent=2).encode())


class DeskDeltaTask:
    """Train DeskDelta in the one training loop (see the module docstring)."""

    def __init__(self, config: dict[str, Any], data: Path, run: Path, progress: bool = True) -> None:
        self.config, self.data, self.run = config, Path(data), Path(run)
        m = config["model"]
        self.size = (m["height"], m["width"])
        self.screen = tuple(m["screen"])
        self.records = check_dataset(self.data, m, None, ())
        self.val_records = check_dataset(self.data, m, None, (), split="val", required=False)
        if any("actions" not in r for r in self.records):
            raise NCError(f"{self.data}: not a desktop dataset (records without actions)")
        self.module = DeskDeltaModel(m)
        self.cache = cache_dir(self.data, self.run, ".deskdelta-cache")
        self.episodes = [self._load(r) for r in tqdm(self.records, desc="read episodes", unit="episode",
                                                     disable=not progress)]
        weights, self.examples = [], []
        for e, ep in enumerate(self.episodes):
            for t in range(1, len(ep["index"])):
                changed = ep["index"][t] != ep["index"][t - 1]
                self.examples.append((e, t))
                weights.append(m["changed_boost"] if changed else 1.0)
        if not self.examples:
            raise NCError(f"{self.data}: the episodes have no frame after their first")
        self.weights = torch.tensor(weights, dtype=torch.double)
        self._val: list[dict[str, Any]] | None = None  # the val episodes, read on first use
        self._memory: TransitionMemory | None = None

    def _load(self, record: dict) -> dict[str, Any]:
        return read_episode(self.data, record, self.size, self.cache)

    def _example(self, e: int, t: int) -> tuple[np.ndarray, np.ndarray, list]:
        """The framebuffers read ``(K, H, W, 3)``, the one to predict ``(H, W, 3)`` (uint8) and the input
        steps; with the cursor drawn in where the model draws it itself (``cursor`` ablation)."""
        return example(self.episodes[e], t, self.module, self.screen)

    def batch(self, step: int, rank: int, world: int, micro: int, batch_size: int) -> tuple[dict, int]:
        from neuralcomputer.train.common import step_generator

        gen = step_generator(self.config["train"]["seed"], step, rank * 1000 + micro)
        picks = torch.multinomial(self.weights, batch_size, replacement=True, generator=gen).tolist()
        ctx, tgt, windows = zip(*(self._example(*self.examples[i]) for i in picks), strict=True)
        maps, vectors = self.module.inputs(windows, self.screen)
        to_t = lambda a: torch.from_numpy(np.stack(a)).float().div(255)  # noqa: E731
        frames = to_t(ctx).permute(0, 1, 4, 2, 3)     # (B, K, 3, H, W)
        target = to_t(tgt).permute(0, 3, 1, 2)        # (B, 3, H, W)
        return {"frames": frames, "target": target, "maps": torch.from_numpy(maps),
                "vectors": torch.from_numpy(vectors)}, batch_size

    def compute_loss(self, module: DeskDeltaModel, batch: dict) -> torch.Tensor:
        device = next(module.parameters()).device
        batch = {k: v.to(device) for k, v in batch.items()}
        logits, colour = module(batch["frames"], batch["maps"], batch["vectors"])
        prev, target = batch["frames"][:, -1], batch["target"]
        if not module.copy_prior:  # ablation: a plain frame regression
            return (colour - target).abs().mean()
        changed = ((target - prev).abs().amax(1, keepdim=True) > 0.5 / 255).float()  # (B, 1, H, W)
        # balanced: the changed pixels (often under 1% of a frame) weigh as much as the rest, so the gate
        # learns to open; opening it where nothing changes costs little, the colour is a residual on the
        # previous pixel
        n_changed = changed.sum()

        def balanced(per_pixel: torch.Tensor) -> torch.Tensor:
            """Mean over the changed pixels and mean over the rest, weighted equally."""
            per_pixel = per_pixel.mean(1, keepdim=True)
            return 0.5 * ((per_pixel * changed).sum() / n_changed.clamp(min=1)
                          + (per_pixel * (1 - changed)).sum() / (changed.numel() - n_changed).clamp(min=1))

        gate = balanced(F.binary_cross_entropy_with_logits(logits, changed, reduction="none"))
        # the colour is also held to the previous pixel where nothing changes: a gate opened there in
        # error (it is trained to open generously) then changes nothing (seen: unconstrained colours there
        # drew a dotted white and magenta pattern wherever the gate strayed)
        colour_l1 = balanced((colour - target).abs())
        blend = (module.combine(prev, logits, colour, hard=False) - target).abs().mean()
        return gate + colour_l1 + blend

    @torch.no_grad()
    def validate(self, module: DeskDeltaModel, step: int) -> dict[str, float]:
        """One-step PSNR on the val episodes' frames that change, beside copying the previous framebuffer."""
        from neuralcomputer.eval.image_metrics import psnr

        if not self.val_records:
            return {}
        module.eval()
        m = self.config["model"]
        preds, copies, trues = [], [], []
        if self._val is None:
            self._val = [self._load(r) for r in self.val_records[: self.config["train"]["val_clips"]]]
        for ep in self._val:
            changed = [t for t in range(1, len(ep["index"])) if ep["index"][t] != ep["index"][t - 1]]
            for t in changed[: self.config["train"]["val_frames"]]:
                ctx, true, window = example(ep, t, module, self.screen)
                maps, vectors = module.inputs([window], self.screen)
                frames = torch.from_numpy(ctx).float().div(255).permute(0, 3, 1, 2)[None]
                logits, colour = module(frames, torch.from_numpy(maps), torch.from_numpy(vectors))
                out = module.combine(frames[:, -1], logits, colour, hard=True, threshold=m["gate_threshold"])[0]
                preds.append((out.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
                copies.append(ctx[-1])
                trues.append(true)
        module.train()
        if not trues:
            return {}
        return {"val_changed_psnr": psnr(np.stack(preds), np.stack(trues)),
                "val_copy_psnr": psnr(np.stack(copies), np.stack(trues))}

    def transition_memory(self) -> TransitionMemory:
        """The training episodes as a transition memory (built once: it does not depend on the weights)."""
        if self._memory is None:
            m = self.config["model"]
            self._memory = TransitionMemory.build(
                ((ep["framebuffers"], ep["index"], ep["actions"]) for ep in self.episodes), self.screen,
                m.get("recall", {}))
        return self._memory

    def export(self, module: nn.Module, path: Path) -> None:
        """The weights and, unless ``recall.mode`` is ``off``, the transition memory beside them."""
        module.save_pretrained(path)
        if self.config["model"].get("recall", {}).get("mode", "off") != "off":
            save_memory(self.transition_memory(), path)
