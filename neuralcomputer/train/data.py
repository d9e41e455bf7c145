"""Training data: clips subsampled to a model's frames, checked up front, with an encoded-latent cache.

Order: one global sequence of example indices, a fresh seeded permutation per epoch; step ``s`` of a
run with ``world`` processes and micro-batch ``b`` takes the slice at ``s * world * b * accum`` of it.
The order is a pure function of (seed, step), so a resumed run reads exactly the data it would have.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch

from neuralcomputer.data.dataset import load_manifest, read_clip_payload
from neuralcomputer.data.terminal.captions import strip_timing
from neuralcomputer.data.torch_dataset import frames_to_tensor
from neuralcomputer.errors import NCError

TIERS = ("semantic", "regular", "detailed")


def clip_frame_indices(num_frames: int, stride: int, clip_len: int) -> np.ndarray:
    """Indices ``0, stride, 2*stride, ...`` of ``num_frames`` frames, held at the clip's last frame."""
    return np.minimum(np.arange(num_frames) * stride, clip_len - 1)


def check_dataset(root: str | Path, model_cfg: dict, text_max_len: int | None, tiers: tuple[str, ...],
                  split: str = "train", required: bool = True) -> list[dict]:
    """The records of ``split``, after checking everything a run needs; raises one clear NCError.

    ``required=False``: an empty split is allowed (validation is then skipped)."""
    root = Path(root)
    if not root.exists():
        raise NCError(f"{root}: no such dataset (make one with `ncomp data render`)")
    records = [r for r in load_manifest(root) if r["split"] == split]
    if not records and required:
        raise NCError(f"{root}: the {split} split is empty")
    if not model_cfg.get("timing", False):  # the paper's detailed tier says what appears, not when
        for r in records:
            if "detailed" in r.get("captions", {}):
                r["captions"]["detailed"] = strip_timing(r["captions"]["detailed"])
    h, w = model_cfg["height"], model_cfg["width"]
    for r in records:
        if model_cfg.get("resize_frames"):
            # resized on load: only the aspect ratio must agree (to within a pixel of the model's size)
            if abs(r["width"] * h / r["height"] - w) > 1:
                raise NCError(f"{root}/{r['path']}: frames are {r['width']}x{r['height']}, not the aspect ratio of "
                              f"the preset's {w}x{h} (override height=/width=)")
        elif (r["height"], r["width"]) != (h, w):
            raise NCError(f"{root}/{r['path']}: frames are {r['width']}x{r['height']}, the preset expects {w}x{h} "
                          "(re-render at the preset's font size and grid, or override height=/width=)")
    if text_max_len is not None:
        for r in records:
            for tier in tiers:
                n = len(r["captions"][tier].encode())
                if n > text_max_len:
                    longest = max(len(x["captions"][t].encode()) for x in records for t in tiers)
                    raise NCError(f"{root}/{r['path']}: {tier} caption is {n} bytes, over text max_len={text_max_len} "
                                  f"(override max_len={longest} or more)")
    return records


def load_clip_frames(root: Path, record: dict, num_frames: int, stride: int) -> np.ndarray:
    """``(num_frames, H, W, 3)`` uint8 frames of a clip at the model's frame stride."""
    frames = read_clip_payload(root / record["path"])["frames"]
    return frames[clip_frame_indices(num_frames, stride, len(frames))]


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(n)


def example_indices(n: int, seed: int, start: int, count: int) -> list[int]:
    """``count`` example indices from global position ``start`` of the seeded epoch sequence."""
    out = []
    pos = start
    while len(out) < count:
        epoch, offset = divmod(pos, n)
        order = epoch_order(n, seed, epoch)
        take = min(count - len(out), n - offset)
        out.extend(int(i) for i in order[offset: offset + take])
        pos += take
    return out


class LatentCache:
    """Latents of every training clip, encoded once by a frozen tokenizer: ``(N, C, T', h, w)`` float16.

    Stored as ``<cache_dir>/latents-<key>.npy`` where the key hashes the tokenizer weights, the frame
    selection and the clip list; a cache that does not match is never reused.
    """

    def __init__(self, latents: np.ndarray) -> None:
        self.latents = latents

    @staticmethod
    def key(tokenizer: torch.nn.Module, records: list[dict], num_frames: int, stride: int) -> str:
        h = hashlib.sha1()
        for name, t in sorted(tokenizer.state_dict().items()):
            h.update(name.encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
        h.update(json.dumps([[r["id"] for r in records], num_frames, stride]).encode())
        return h.hexdigest()[:16]

    @classmethod
    def build(cls, cache_dir: Path, root: Path, records: list[dict], tokenizer: torch.nn.Module, num_frames: int,
              stride: int, progress: bool = True) -> LatentCache:
        from tqdm import tqdm

        path = Path(cache_dir) / f"latents-{cls.key(tokenizer, records, num_frames, stride)}.npy"
        if path.exists():
            return cls(np.load(path, mmap_mode="r"))
        out = None
        with torch.no_grad():
            for i, r in enumerate(tqdm(records, desc="encode latents", unit="clip", disable=not progress)):
                z = tokenizer.encode(frames_to_tensor(load_clip_frames(root, r, num_frames, stride))[None])[0]
                if out is None:
                    out = np.empty((len(records), *z.shape), dtype=np.float16)
                out[i] = z.numpy().astype(np.float16)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.npy")  # each process of a multi-GPU run its own
        np.save(tmp, out)
        tmp.replace(path)
        return cls(np.load(path, mmap_mode="r"))
