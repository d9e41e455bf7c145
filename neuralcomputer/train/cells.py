"""Training data for CellGen: a terminal dataset encoded once into tile grids (a cached ``.npz``).

Per clip: the first and last frames' tile ids ``(R, C)``, the switch frame of every cell ``(R, C)``
(:func:`~neuralcomputer.models.cellgen.switch_times`) and the three captions. Encoding is exact
(:class:`~neuralcomputer.models.tile_codec.TileCodec`), so this cache is the dataset, smaller.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from neuralcomputer.data.dataset import atomic_write_bytes, load_manifest
from neuralcomputer.data.terminal.captions import parse_timing, strip_timing
from neuralcomputer.errors import NCError
from neuralcomputer.models.cellgen import (
    NO_CHAR,
    CellGenNet,
    layout_inputs,
    masked_schedule,
    pad_bytes,
    row_windows,
    switch_times,
)
from neuralcomputer.models.tile_codec import TileCodec
from neuralcomputer.train.common import cache_dir

TIERS = ("semantic", "regular", "detailed")


@dataclass
class CellClips:
    """Encoded clips of one split. first, final, switch: ``(K, R, C)`` int; captions: K dicts of tiers."""

    ids: list[str]
    first: np.ndarray
    final: np.ndarray
    switch: np.ndarray
    captions: list[dict[str, str]]
    num_frames: int


def _unique_frames(path: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """A clip's distinct frames ``(U, H, W, 3)``, the frame -> distinct index ``(T,)`` and each distinct
    frame's screen text, without expanding all T frames (``read_clip_payload`` does, 60 MB a clip)."""
    with np.load(path) as z:
        unique = np.cumsum(z["frames_delta"], axis=0, dtype=np.uint8)
        index = z["frame_index"]
        text = z["text"]  # one per distinct frame
    return unique, index, [str(t) for t in text]


def encode_clips(root: Path, records: list[dict], codec: TileCodec, *, grow: bool = False,
                 progress: bool = True, clip_frames: int | None = 75) -> CellClips:
    """Encode clips (all of one grid and length) into :class:`CellClips`; with ``grow`` the codec first
    takes every new tile of each clip (tile ids only ever get appended, so earlier clips stay valid)."""
    firsts, finals, switches, captions, ids = [], [], [], [], []
    num_frames = clip_frames
    for rec in tqdm(records, desc="encode", disable=not progress):
        unique, index, texts = _unique_frames(root / rec["path"])
        if grow:
            codec.extend(unique, texts)
        grids = np.stack([codec.encode(f) for f in unique])[index]                            # (T, R, C)
        if num_frames is None:
            num_frames = len(grids)
        if len(grids) < num_frames:  # a clip cut by the session's end: its last screen holds
            grids = np.concatenate([grids, np.repeat(grids[-1:], num_frames - len(grids), axis=0)])
        grids = grids[:num_frames]
        if firsts and grids.shape[1:] != firsts[0].shape:
            raise NCError(f"{rec['path']}: a {grids.shape[2]}x{grids.shape[1]} grid; the first clip's is "
                          f"{firsts[0].shape[1]}x{firsts[0].shape[0]} (one grid per dataset)")
        firsts.append(grids[0])
        finals.append(grids[-1])
        switches.append(switch_times(grids))
        captions.append({t: rec["captions"][t] for t in TIERS})
        ids.append(rec["id"])
    if not ids:
        raise NCError(f"{root}: no clips to encode")
    return CellClips(ids, np.stack(firsts), np.stack(finals), np.stack(switches), captions, int(num_frames))


def _manifest_key(root: Path) -> str:
    """The dataset's clips, captions aside: re-captioning a dataset (a new captioner) keeps its encoding."""
    records = [{k: v for k, v in r.items() if k != "captions"} for r in load_manifest(root)]
    return hashlib.sha1(json.dumps(records, sort_keys=True).encode()).hexdigest()[:16]


def _cache_key(root: Path, split: str, codec: TileCodec) -> str:
    return hashlib.sha1((_manifest_key(root) + split).encode() + codec.tiles.tobytes()).hexdigest()[:16]


def _cache_path(cache: Path, root: Path, split: str, codec: TileCodec) -> Path:
    """The cached encoding of a split: named by the manifest and the codec, so either changing re-encodes."""
    return cache / f"cells-{split}-{_cache_key(root, split, codec)}.npz"


def save_cell_clips(clips: CellClips, cache: Path, root: Path, split: str, codec: TileCodec) -> None:
    """Write encoded clips to the cache (atomically: a temp name, then a rename)."""
    import io

    buf = io.BytesIO()
    meta = json.dumps({"ids": clips.ids, "captions": clips.captions, "num_frames": clips.num_frames})
    np.savez_compressed(buf, first=clips.first.astype(np.int16), final=clips.final.astype(np.int16),
                        switch=clips.switch.astype(np.int16), meta=np.array(meta))
    cache.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(_cache_path(cache, root, split, codec), buf.getvalue())


def load_cell_clips(root: str | Path, split: str, codec: TileCodec, cache: Path | None = None,
                    progress: bool = True, grow: bool = False) -> CellClips:
    """A split of a terminal dataset as :class:`CellClips`, cached under ``cache`` (keyed by the
    manifest's clips and the codec, so a changed dataset or codec re-encodes; captions are read from the
    manifest, so a re-captioned dataset does not)."""
    root = Path(root)
    records = [r for r in load_manifest(root) if r.get("split") == split]
    if not records:
        raise NCError(f"{root}: no {split} clips")
    if cache is not None:
        path = _cache_path(cache, root, split, codec)
        if path.is_file():
            with np.load(path) as z:
                meta = json.loads(str(z["meta"]))
                captions = {r["id"]: {t: r["captions"][t] for t in TIERS} for r in records}  # the manifest's own
                return CellClips(meta["ids"], z["first"], z["final"], z["switch"],
                                 [captions[i] for i in meta["ids"]], meta["num_frames"])
    clips = encode_clips(root, records, codec, grow=grow, progress=progress)
    if cache is not None:
        save_cell_clips(clips, cache, root, split, codec)
    return clips


def typing_rate(clips: CellClips, fps: float) -> float | None:
    """Median frames between two keys of a typed command, over the clips' detailed captions: rows that
    end with a command the caption names after a prompt that appears in the clip (the sampler places
    such keys back from the row's last change at this rate). None when no clip types one."""
    from neuralcomputer.data.terminal.captions import parse_commands, parse_detailed
    from neuralcomputer.pipelines.cells import typed_spans

    rates = []
    for i, captions in enumerate(clips.captions):
        caption = captions["detailed"]
        timing = parse_timing(caption, fps)
        for _, r, start, end in typed_spans(timing, parse_detailed(caption), parse_commands(caption),
                                            clips.first.shape[1]):
            if end - start < 2 or not (clips.first[i][r, :start] != clips.final[i][r, :start]).any():
                continue
            keys = clips.switch[i][r, start:end]
            rates.append((int(keys[-1]) - int(keys[0])) / (end - start - 1))
    return float(np.median(rates)) if rates else None


def make_batch(clips: CellClips, indices: np.ndarray, tiers: list[str], codec: TileCodec, max_text: int,
               gen: torch.Generator, fps: float = 15.0, timing_dropout: float = 0.0,
               regular_hints: bool = False) -> dict[str, torch.Tensor]:
    """One training batch: model inputs for the clips at ``indices`` with the given caption tiers, a random
    share of each target hidden (masked diffusion: the share is ``masked_schedule(U(0, 1))``).

    ``timing_dropout``: the share of captions whose timing sentence is removed (bytes and row windows), so
    the model also draws from captions that do not say when (hybrid mode, a user's own caption).
    ``regular_hints``: regular captions' commands and last line laid out where they most likely stand
    (:func:`~neuralcomputer.models.cellgen.layout_inputs`)."""
    shifted, canvas, texts, windows = [], [], [], []
    drop = (torch.rand(len(indices), generator=gen) < timing_dropout).tolist()
    for i, tier, no_timing in zip(indices.tolist(), tiers, drop, strict=True):
        caption = clips.captions[i][tier]
        if no_timing:
            caption = strip_timing(caption)
        s, c = layout_inputs(clips.first[i], caption, codec.char_tile,
                             codec.text(clips.first[i]) if regular_hints else None)
        shifted.append(s)
        canvas.append(c)
        texts.append(caption.encode()[:max_text])
        windows.append(row_windows(parse_timing(caption, fps), s.shape[0], clips.num_frames))
    first = torch.from_numpy(clips.first[indices].astype(np.int64))
    final = torch.from_numpy(clips.final[indices].astype(np.int64))
    switch = torch.from_numpy(clips.switch[indices].astype(np.int64))
    b = len(indices)
    hidden_share = masked_schedule(torch.rand(b, generator=gen))
    hidden = torch.rand(final.shape, generator=gen) < hidden_share.view(b, 1, 1)
    text, text_len = pad_bytes(texts)
    return {"first": first, "shifted": torch.from_numpy(np.stack(shifted).astype(np.int64)),
            "canvas": torch.from_numpy(np.stack(canvas).astype(np.int64)),
            "target": torch.where(hidden, torch.full_like(final, -1), final), "final": final, "switch": switch,
            "hidden": hidden, "text": text, "text_len": text_len, "window": torch.from_numpy(np.stack(windows))}


def cell_loss(net: CellGenNet, batch: dict[str, torch.Tensor], changed_weight: float = 4.0
              ) -> tuple[torch.Tensor, dict[str, float]]:
    """Cross-entropy on the hidden cells' tiles (changed cells weighted up: most cells only copy) plus the
    switch frame of the changed cells. Returns the loss and its parts."""
    logits, switch_logits = net(batch["first"], batch["shifted"], batch["canvas"], batch["target"],
                                batch["text"], batch["text_len"], batch.get("window"))
    changed = batch["final"] != batch["first"]
    weight = batch["hidden"].float() * (1.0 + changed_weight * changed.float())
    ce = F.cross_entropy(logits.permute(0, 3, 1, 2), batch["final"], reduction="none")
    tile_loss = (ce * weight).sum() / weight.sum().clamp(min=1.0)
    if changed.any():
        sw = F.cross_entropy(switch_logits[changed], batch["switch"][changed].clamp(max=net.switch_classes - 1))
    else:
        sw = switch_logits.sum() * 0.0
    return tile_loss + 0.5 * sw, {"tile_loss": float(tile_loss.detach()), "switch_loss": float(sw.detach())}


class CellGenTask:
    """Train CellGen (``cligen-cells`` preset) in the one training loop.

    The tile codec is fitted first on the train split's frames (deterministic: the clips' order), the
    clips are encoded once (cached under ``RUN/cache``), then each step draws clips and caption tiers
    from the step's own generator, so a resumed run repeats an uninterrupted one.
    """

    def __init__(self, config: dict, data: Path, run: Path, progress: bool = True) -> None:
        self.config, self.data, self.run = config, Path(data), Path(run)
        m, t = config["model"], config["train"]
        self.tiers = list(TIERS) if t["tier"] == "mixed" else [t["tier"]]
        cache = cache_dir(self.data, self.run, ".cells-cache")
        codec_dir = cache / f"codec-{_manifest_key(self.data)}"
        if (codec_dir / "tiles.safetensors").is_file():
            self.codec = TileCodec.load(codec_dir)
            self.clips = load_cell_clips(self.data, "train", self.codec, cache, progress)
        else:  # the codec grows while the train split is encoded, then is fixed
            self.codec = TileCodec.rendered()
            self.clips = load_cell_clips(self.data, "train", self.codec, None, progress, grow=True)
            self.codec.save(codec_dir)
            save_cell_clips(self.clips, cache, self.data, "train", self.codec)
        if self.clips.num_frames != m["num_frames"]:
            raise NCError(f"{self.data}: clips have {self.clips.num_frames} frames; preset expects "
                          f"{m['num_frames']} (render with --clip-seconds {m['num_frames'] / m['fps']:g})")
        try:
            self.val = load_cell_clips(self.data, "val", self.codec, cache, progress)
        except NCError:
            self.val = None
        self.module = CellGenNet(len(self.codec), m["num_frames"], **m["net"])
        if m.get("key_frames", "auto") == "auto":  # a property of the data, measured once, kept in the model
            m["key_frames"] = typing_rate(self.clips, float(m["fps"]))

    def batch(self, step: int, rank: int, world: int, micro: int, batch_size: int) -> tuple[dict, int]:
        from neuralcomputer.train.common import step_generator

        gen = step_generator(self.config["train"]["seed"], step, rank * 1000 + micro)
        idx = torch.randint(len(self.clips.ids), (batch_size,), generator=gen).numpy()
        tiers = [self.tiers[int(k)] for k in torch.randint(len(self.tiers), (batch_size,), generator=gen)]
        m = self.config["model"]
        batch = make_batch(self.clips, idx, tiers, self.codec, self.module.max_text, gen, fps=float(m["fps"]),
                           timing_dropout=float(m.get("timing_dropout", 0.0)),
                           regular_hints=bool(m.get("regular_hints", False)))
        if not self.config["model"]["layout"]:  # ablation: the caption's bytes alone
            batch["shifted"] = batch["first"]
            batch["canvas"] = torch.full_like(batch["canvas"], NO_CHAR)
        return batch, batch_size

    def compute_loss(self, module: nn.Module, batch: dict) -> torch.Tensor:
        device = next(module.parameters()).device
        batch = {k: v.to(device) for k, v in batch.items()}
        return cell_loss(module, batch, self.config["model"]["changed_weight"])[0]

    @torch.no_grad()
    def validate(self, module: nn.Module, step: int) -> dict[str, float]:
        """The val clips' detailed captions, sampled as the model directory will sample them (timing,
        typing and all) and scored against the true clip in cells: PSNR and SSIM of the decoded frames,
        the share of cells and of whole rows that read right, and of the last screen's changed cells.

        The true clip is the encoded one (each cell's first value, then its last from its switch frame),
        decoded by the same exact codec. PSNR over every frame; SSIM and the text scores over 5 frames
        spread past the first (as ``ncomp eval`` reads text), so the steps table follows the eval's
        metrics without a Tesseract pass."""
        from neuralcomputer.eval.image_metrics import psnr, ssim_per_frame
        from neuralcomputer.models.cellgen import compose_frames
        from neuralcomputer.pipelines.cells import CellPipeline

        if self.val is None:
            return {}
        pipe = CellPipeline(module, self.codec, self.config["model"])  # puts the module in eval mode
        chars = np.array([c or " " for c in self.codec.chars])
        frames_n = self.val.num_frames
        picked = np.linspace(0, frames_n - 1, 6).round().astype(int)[1:]
        psnrs, ssims, rows_ok, rows, cells_ok, cells, changed_ok, changed = [], [], 0, 0, 0, 0, 0, 0
        for i in range(min(len(self.val.ids), self.config["train"]["val_clips"])):
            first = self.val.first[i].astype(np.int64)
            pred = pipe.grids(first, self.val.captions[i]["detailed"], frames_n)                  # (T, R, C)
            true = compose_frames(first, self.val.final[i], self.val.switch[i], frames_n)
            pred_frames, true_frames = self.codec.decode(pred), self.codec.decode(true)   # (T, H, W, 3)
            psnrs.append(psnr(pred_frames, true_frames))
            ssims.extend(ssim_per_frame(pred_frames[picked], true_frames[picked]).tolist())
            p, t = chars[pred[picked]], chars[true[picked]]                                      # (5, R, C)
            cells_ok += int((p == t).sum())
            cells += t.size
            rows_ok += int((p == t).all(-1).sum())
            rows += t.shape[0] * t.shape[1]
            moved = chars[true[-1]] != chars[first]
            changed += int(moved.sum())
            changed_ok += int((chars[pred[-1]][moved] == chars[true[-1]][moved]).sum())
        module.train()
        finite = [v for v in psnrs if math.isfinite(v)]  # an exact clip is left out, as `ncomp eval` does
        return {"psnr": float(np.mean(finite)) if finite else math.inf, "ssim": float(np.mean(ssims)),
                "char_acc": cells_ok / max(cells, 1), "line_acc": rows_ok / max(rows, 1),
                "changed_char_acc": changed_ok / max(changed, 1)}

    def export(self, module: nn.Module, path: Path) -> None:
        from neuralcomputer.pipelines.cells import CellPipeline

        CellPipeline(module, self.codec, self.config["model"]).save(path)
        module.train()  # the pipeline put it in eval mode
