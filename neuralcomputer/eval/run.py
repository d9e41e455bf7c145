"""`ncomp eval --model`: generate a clip for every reference clip, then score (two steps)."""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path

import torch
from tqdm import tqdm

from neuralcomputer.data.dataset import load_manifest, read_clip_payload
from neuralcomputer.errors import NCError
from neuralcomputer.eval.evaluate import EvalOptions, evaluate_videos
from neuralcomputer.eval.interface import ClipGenerator
from neuralcomputer.eval.report import plot_curves, write_report
from neuralcomputer.eval.videos import VideoSet, write_frames_npz

STAMP = ".generated-by"  # in a generated folder: what made its clips (resuming needs the same maker)


def generator_stamp(model: ClipGenerator, *, split: str | None, tier: str, seed: int) -> str:
    """A digest of what decides a generated clip: the generator's class, config, sampling settings and
    weights, and the split, caption tier and seed."""
    h = hashlib.sha1(json.dumps([type(model).__name__, split, tier, seed]).encode())
    for obj in (model, getattr(model, "backend", None)):
        if obj is None:
            continue
        config = getattr(obj, "config", None)
        if isinstance(config, dict):
            h.update(json.dumps(config, sort_keys=True, default=str).encode())
        for attr in ("steps", "sampler", "deterministic", "hybrid"):
            h.update(repr(getattr(obj, attr, None)).encode())
        net = getattr(obj, "model", None)
        if hasattr(net, "state_dict"):
            for name, value in net.state_dict().items():
                h.update(name.encode())
                h.update(value.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def generate_for_dataset(model: ClipGenerator, dataset: str | Path, out: str | Path, *, split: str | None = "test",
                         tier: str = "detailed", limit: int | None = None, seed: int = 0,
                         progress: bool = True) -> Path:
    """Write ``out/<id>.npz`` for each reference clip: the model's clip from its first frame and caption.

    Clip ``i`` is generated with seed ``seed + i``: reproducible, and different across clips. Resumable:
    clips already in ``out`` are kept when the same generator and settings made them
    (:func:`generator_stamp`); clips another model or setting made there are generated again.
    """
    records = [r for r in load_manifest(dataset) if split is None or r["split"] == split]
    if limit is not None:
        records = records[:limit]
    if not records:
        raise NCError(f"{dataset}: no clips in split {split!r}")
    out = Path(out)
    stamp = generator_stamp(model, split=split, tier=tier, seed=seed)
    previous = (out / STAMP).read_text() if (out / STAMP).is_file() else None
    stale = sorted(out.glob("*.npz")) if out.is_dir() and previous != stamp else []
    if stale:  # made by another model or setting (or before stamps): resuming would score them as this one's
        print(f"{out}: {len(stale)} clips made by another model or setting; generating them again", file=sys.stderr)
        for path in stale:
            path.unlink()
    out.mkdir(parents=True, exist_ok=True)
    (out / STAMP).write_text(stamp)
    for i, record in enumerate(tqdm(records, desc="generate", unit="clip", disable=not progress)):
        path = out / f"{record['id']}.npz"
        if path.exists():
            continue  # resumable: generation is the expensive half
        frames = read_clip_payload(Path(dataset) / record["path"])["frames"]
        generated = model.generate(frames[0], record["captions"][tier], len(frames), seed + i)
        write_frames_npz(path, generated)
    return out


def _step_of(name: str, fallback: int) -> int:
    numbers = re.findall(r"\d+", Path(name).name)
    return int(numbers[-1]) if numbers else fallback


def evaluate_models(models: list[tuple[str, ClipGenerator]], dataset: str | Path, out: str | Path, *,
                    options: EvalOptions, split: str | None = "test", tier: str = "detailed", seed: int = 0,
                    progress: bool = True) -> dict:
    """Generate and score each model; with several (checkpoints), also plot metrics over steps.

    Returns the report of the last model (also written to ``out/report.json``).
    """
    out = Path(out)
    ref = VideoSet.open(dataset)
    reports: list[tuple[int, dict]] = []
    last: dict = {}
    for n, (name, model) in enumerate(models):
        target = out if len(models) == 1 else out / f"model-{n:02d}"
        generated = generate_for_dataset(model, dataset, target / "generated", split=split, tier=tier,
                                         limit=options.limit, seed=seed, progress=progress)
        pred = VideoSet.open(generated)
        report = evaluate_videos(pred, ref, options, progress=progress)
        report["model"] = name
        last = write_report(target, report, pred, ref, title=f"Evaluation of {name}")
        reports.append((_step_of(name, n), report))
    if len(reports) > 1:
        plot_curves(sorted(reports, key=lambda x: x[0]), out)
        write_report(out, reports[-1][1], title=f"Evaluation of {models[-1][0]} (last of {len(models)})")
    return last
