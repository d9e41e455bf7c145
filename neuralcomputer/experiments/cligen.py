"""The paper's CLIGen findings at tiny scale: one command per table, the paper's numbers beside ours.

``ncomp experiment cligen TABLE --out DIR`` writes ``DIR/TABLE.json``, ``DIR/TABLE.md`` and, where a
curve says more than a table, ``DIR/TABLE.png``. Runs resume: a variant whose run is done is not
retrained, a clip already generated is not generated again.

Tables:

* ``tiers``       -- one model per caption tier (semantic / regular / detailed, plus our default
                     ``mixed``), equal budgets, each scored on the test split with captions of its own
                     tier (mixed: detailed). Paper: PSNR 21.90 / 23.63 / 26.89, SSIM 0.813 / 0.843 / 0.867.
* ``steps``       -- validation metrics over training steps for several seeds (mean and spread).
                     Paper: PSNR/SSIM plateau around 25k steps while char accuracy keeps rising
                     (.03 -> .54 over 60k steps; exact line .01 -> .31).
* ``arithmetic``  -- the arithmetic probe native vs reprompted vs hybrid (a real Python in a sandbox
                     computes the answer and the caption quotes it). Paper: 4% native, 83% reprompted.
* ``determinism`` -- same inputs and seed give bit-identical frames? across runs, thread counts, a saved
                     and restored state, and two training runs.

Uncertainty: means over clips come with a 95% bootstrap interval over clips; accuracies over problems
with a 95% Wilson interval; training curves with the spread over seeds. ``--quick`` runs every table on
data recorded on the spot (real shells, 40x8 terminals), a tiny model and a few steps: it checks the
pipeline from a clean clone, it measures nothing.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from neuralcomputer.config import apply_overrides, preset_config
from neuralcomputer.data.dataset import atomic_write_bytes
from neuralcomputer.data.terminal.captions import TIERS as CAPTION_TIERS
from neuralcomputer.errors import NCError

PAPER: dict[str, Any] = {
    "tiers": {"semantic": {"psnr": 21.90, "ssim": 0.813}, "regular": {"psnr": 23.63, "ssim": 0.843},
              "detailed": {"psnr": 26.89, "ssim": 0.867}},
    "steps": {"char_acc": [0.03, 0.54], "line_acc": [0.01, 0.31], "steps": 60000, "plateau_step": 25000},
    "arithmetic": {"native": 0.04, "reprompt": 0.83},
}
TABLES = ("tiers", "steps", "arithmetic", "determinism")
TIERS = ("semantic", "regular", "detailed", "mixed")
# cligen-tiny shrunk to seconds per step on a 40x8 terminal (320x136 frames, 8x40 cells)
QUICK_OVERRIDES = ["height=136", "width=320", "num_frames=3", "frame_stride=5", "num_layers=2",
                   "num_attention_heads=2", "attention_head_dim=24", "ffn_dim=96", "freq_dim=32", "text_dim=32",
                   "layers=1", "heads=2", "val_clips=2", "val_steps=2", "val_every=2", "log_every=1",
                   "sample_steps=2", "tokenizer_steps=20", "threads=1"]
# cligen-cells shrunk the same way (CellGen reads any grid: the 40x8 quick data as it is)
QUICK_CELL_OVERRIDES = ["height=136", "width=320", "dim=32", "layers=1", "heads=2", "mlp_ratio=1", "val_clips=2",
                        "val_every=2", "log_every=1", "batch_size=2", "threads=1"]
QUICK_STEPS = 4
QUICK_GRID = (40, 8)


# ---------------------------------------------------------------------------------------- statistics

def mean_ci(values: list[float] | np.ndarray, *, level: float = 0.95, n_boot: int = 2000,
            seed: int = 0) -> dict[str, float | int | None]:
    """Mean with a percentile-bootstrap interval: ``{"mean", "lo", "hi", "n"}`` (None when empty)."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], np.float64)
    if len(x) == 0:
        return {"mean": None, "lo": None, "hi": None, "n": 0}
    if len(x) == 1:
        return {"mean": float(x[0]), "lo": float(x[0]), "hi": float(x[0]), "n": 1}
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), (n_boot, len(x)))].mean(axis=1)
    alpha = (1 - level) / 2
    return {"mean": float(x.mean()), "lo": float(np.quantile(means, alpha)), "hi": float(np.quantile(means, 1 - alpha)),
            "n": int(len(x))}


def wilson(successes: int, n: int, z: float = 1.96) -> dict[str, float | int | None]:
    """A proportion with its Wilson score interval (sound at 0/n and n/n, unlike mean +- 2 SE)."""
    if n == 0:
        return {"mean": None, "lo": None, "hi": None, "n": 0}
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return {"mean": p, "lo": max(0.0, centre - half), "hi": min(1.0, centre + half), "n": n}


def _fmt_ci(stat: dict | None, digits: int = 3) -> str:
    if not stat or stat.get("mean") is None:
        return "n/a"
    return f"{stat['mean']:.{digits}f} [{stat['lo']:.{digits}f}, {stat['hi']:.{digits}f}]"


def _write(out: Path, name: str, result: dict, markdown: str) -> None:
    from neuralcomputer.eval.report import jsonable

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / f"{name}.json", json.dumps(jsonable(result), indent=2).encode())
    atomic_write_bytes(out / f"{name}.md", markdown.encode())


def _quick_banner(result: dict) -> str:
    return ("> **Quick run (`--quick`)**: tiny data recorded on the spot, a tiny model, a few steps. It checks "
            "that the pipeline runs; its numbers mean nothing.\n\n" if result.get("quick") else "")


# ---------------------------------------------------------------------------------------- data and runs

def quick_dataset(out: Path, sessions: int = 4) -> Path:
    """A tiny real dataset, recorded on the spot: ``sessions`` real bash sessions (the ``basic`` and
    ``python-math`` generators) in a 40x8 pty on the virtual clock, rendered to clips; the last session
    is the test split, the one before it the val split. Reused when it already exists."""
    from neuralcomputer.data.dataset import is_dataset, load_manifest, write_manifest
    from neuralcomputer.data.terminal.build import BuildOptions, render_dataset
    from neuralcomputer.data.terminal.recorder import record_many

    ds = out / "quick-data" / "clean"
    if is_dataset(ds):
        return ds
    casts = out / "quick-data" / "casts"
    cols, rows = QUICK_GRID
    for generator in ("basic", "python-math"):
        summary = record_many(generator, sessions // 2, 7, casts, cols=cols, rows=rows, progress=False)
        if summary.failed:
            raise NCError(f"quick data: {generator} sessions failed to record: {summary.failed}")
    render_dataset([casts], ds, BuildOptions(variant="clean"), progress=False)
    records = load_manifest(ds)
    sessions_seen = sorted({r["session"] for r in records})
    if len(sessions_seen) < 3:
        raise NCError(f"quick data: {len(sessions_seen)} sessions rendered, need 3 (train, val, test)")
    for r in records:
        r["split"] = {sessions_seen[-1]: "test", sessions_seen[-2]: "val"}.get(r["session"], "train")
    write_manifest(ds / "manifest.jsonl", records)
    return ds


def train_variant(preset: str, overrides: list[str], data: Path, run: Path, steps: int,
                  progress: bool = True) -> Path:
    """Train ``run`` (or resume it; a finished run is left alone) and return it."""
    from neuralcomputer.train.loop import DONE, train

    if not (run / DONE).is_file():
        cfg = apply_overrides(preset_config(preset), overrides)
        cfg["train"]["steps"] = steps
        train(cfg, data, run, progress=progress)
    return run


def train_variants(preset: str, overrides: list[str], data: Path, out: Path, steps: int,
                   variants: dict[str, list[str]], progress: bool = True) -> dict[str, Path]:
    """Train ``out/runs/NAME`` for each variant (its overrides after the common ones), all sharing one
    tokenizer: trained in the first run unless the overrides give one, so variants differ only in what
    the table varies."""
    shared: list[str] = []
    runs: dict[str, Path] = {}
    for name, extra in variants.items():
        runs[name] = train_variant(preset, overrides + shared + extra, data, out / "runs" / name, steps, progress)
        if not shared and (runs[name] / "tokenizer" / "model").is_dir():
            shared = [f"model.tokenizer.path={(runs[name] / 'tokenizer' / 'model').resolve()}"]
    return runs


def _val_history(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [{k.removeprefix("val/"): v for k, v in r.items()} for r in rows if "val/psnr" in r]


# ---------------------------------------------------------------------------------------- tiers

def tiers_table(data: Path, out: Path, *, steps: int, overrides: list[str], preset: str = "cligen-tiny",
                eval_clips: int | None = None, seed: int = 0, tiers: tuple[str, ...] = TIERS,
                quick: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train one model per caption tier with equal budgets; score each on the test split."""
    from neuralcomputer.eval.evaluate import EvalOptions
    from neuralcomputer.eval.run import evaluate_models
    from neuralcomputer.runtime.computer import NeuralComputer

    rows: dict[str, Any] = {}
    runs = train_variants(preset, overrides, data, out, steps, {t: [f"tier={t}", f"seed={seed}"] for t in tiers},
                          progress)
    for tier, run in runs.items():
        eval_tier = "detailed" if tier == "mixed" else tier
        computer = NeuralComputer.load(run)
        report = _finished_report(out / "eval" / tier, computer, eval_clips, eval_tier, seed)
        if report is None:
            report = evaluate_models([(tier, computer)], data, out / "eval" / tier,
                                     options=EvalOptions(tesseract=False, limit=eval_clips), split="test",
                                     tier=eval_tier, seed=seed, progress=progress)
        per = report["per_clip"]
        rows[tier] = {
            "eval_captions": eval_tier, "clips": len(per),
            "psnr": mean_ci([c["psnr"] for c in per]), "ssim": mean_ci([c["ssim"] for c in per]),
            "char_acc_gt": mean_ci([c["ocr_grid_gt"]["char_acc"] for c in per if c.get("ocr_grid_gt")]),
            "line_acc_gt": mean_ci([c["ocr_grid_gt"]["line_acc"] for c in per if c.get("ocr_grid_gt")]),
            "val_curve": _val_history(run), "paper": PAPER["tiers"].get(tier, {}),
            "per_clip": {c["id"]: {"psnr": c["psnr"], "ssim": c["ssim"]} for c in per},
        }
    base = next(iter(rows))
    for tier, row in rows.items():  # paired over the same clips: far tighter than comparing two intervals
        common = [i for i in row["per_clip"] if i in rows[base]["per_clip"]]
        row["paired_vs"] = base
        for key in ("psnr", "ssim"):
            row[f"{key}_minus_{base}"] = mean_ci([row["per_clip"][i][key] - rows[base]["per_clip"][i][key]
                                                  for i in common]) if tier != base else None
    result = {"table": "tiers", "preset": preset, "steps": steps, "seed": seed, "overrides": overrides,
              "data": str(data), "quick": quick, "rows": rows}
    _write(out, "tiers", result, tiers_markdown(result))
    return result


def caption_tiers_table(models: dict[str, Path], data: Path, out: Path, *, eval_clips: int | None = None,
                        progress: bool = True) -> dict[str, Any]:
    """Each trained model (one per seed) sampled with each caption tier on the same test clips; tiers
    paired clip by clip (detailed minus regular, regular minus semantic).

    The paper trains a model per tier (:func:`tiers_table`); this asks the cheaper question of one model
    trained on all tiers: how much of the screen each tier's words determine."""
    from neuralcomputer.eval.evaluate import EvalOptions
    from neuralcomputer.eval.run import evaluate_models
    from neuralcomputer.runtime.computer import NeuralComputer

    rows: dict[str, Any] = {}
    for name, path in models.items():
        per_tier: dict[str, dict[str, dict[str, float]]] = {}
        for tier in reversed(CAPTION_TIERS):  # detailed first: the headline figure soonest
            folder = out / "eval" / name / tier
            computer = NeuralComputer.load(path)
            report = _finished_report(folder, computer, eval_clips, tier)
            if report is None:
                report = evaluate_models([(tier, computer)], data, folder,
                                         options=EvalOptions(tesseract=False, limit=eval_clips), split="test",
                                         tier=tier, seed=0, progress=progress)
            per_tier[tier] = _clip_scores(report)
        row: dict[str, Any] = {"model": str(path), "tiers": {}}
        for tier in CAPTION_TIERS:
            clips = per_tier[tier]
            row["tiers"][tier] = {key: mean_ci([c[key] for c in clips.values() if c[key] is not None])
                                  for key in ("psnr", "ssim", "char_acc", "line_acc")} | {"clips": len(clips)}
        for hi, lo in (("detailed", "regular"), ("regular", "semantic")):
            common = [i for i in per_tier[hi] if i in per_tier[lo]]
            row[f"{hi}_minus_{lo}"] = {key: mean_ci([per_tier[hi][i][key] - per_tier[lo][i][key] for i in common
                                                     if per_tier[hi][i][key] is not None
                                                     and per_tier[lo][i][key] is not None])
                                       for key in ("psnr", "line_acc")}
        rows[name] = row
    result = {"table": "tier-captions", "data": str(data), "eval_clips": eval_clips, "rows": rows,
              "paper": PAPER["tiers"]}
    _write(out, "tier-captions", result, caption_tiers_markdown(result))
    return result


def caption_tiers_markdown(result: dict) -> str:
    lines = ["# Caption tiers, one model sampled with each tier (CLIGen)", "",
             f"Data: `{result['data']}` (test split). Each model was trained on all three tiers mixed and is "
             "sampled here with each tier's caption of the same clips. Brackets: 95% bootstrap interval over "
             "clips; the paired columns are per-clip differences on the same clips (an interval that holds 0 "
             "means no difference was detected). Char/line: grid OCR against the true screen text.", "",
             "| model | tier | clips | PSNR (dB) | SSIM | char acc | exact-line acc | paper PSNR |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for name, row in result["rows"].items():
        for tier, r in row["tiers"].items():
            lines.append(f"| {name} | {tier} | {r['clips']} | {_fmt_ci(r['psnr'], 2)} | {_fmt_ci(r['ssim'])} | "
                         f"{_fmt_ci(r['char_acc'])} | {_fmt_ci(r['line_acc'])} | "
                         f"{result['paper'].get(tier, {}).get('psnr', '')} |")
    lines += ["", "| model | detailed minus regular, PSNR | line acc | regular minus semantic, PSNR | line acc |",
              "|---|---:|---:|---:|---:|"]
    for name, row in result["rows"].items():
        d, r = row["detailed_minus_regular"], row["regular_minus_semantic"]
        lines.append(f"| {name} | {_fmt_ci(d['psnr'], 2)} | {_fmt_ci(d['line_acc'])} | {_fmt_ci(r['psnr'], 2)} | "
                     f"{_fmt_ci(r['line_acc'])} |")
    return "\n".join(lines) + "\n"


def _finished_report(folder: Path, model: Any, clips: int | None, tier: str, seed: int = 0) -> dict | None:
    """The report an earlier scoring of ``model`` left in ``folder`` (scoring is minutes per model), or None.

    Taken only when its clips were made by this model with these settings (the generation stamp: weights,
    config, split, tier, seed) and it scored the same clips (``clips``: None = all)."""
    from neuralcomputer.eval.run import STAMP, generator_stamp

    path, stamp = folder / "report.json", folder / "generated" / STAMP
    if not path.is_file() or not stamp.is_file():
        return None
    if stamp.read_text() != generator_stamp(model, split="test", tier=tier, seed=seed):
        return None
    report = json.loads(path.read_text())
    generated = len(list((folder / "generated").glob("*.npz")))
    if report.get("clips") != (generated if clips is None else min(clips, generated)) or "per_clip" not in report:
        return None
    return report


def tiers_markdown(result: dict) -> str:
    lines = [f"# Caption tiers (CLIGen): {result['preset']}, {result['steps']} steps per tier, seed {result['seed']}",
             "", _quick_banner(result) + f"Data: `{result['data']}` (test split). Each model is scored with captions of "
             "its own tier (mixed: detailed). Brackets: 95% bootstrap interval over clips. Char/line accuracy: "
             "grid OCR of the generated frames against the true screen text. The paired columns: the mean "
             "per-clip difference from the first tier's model on the same clips, with its bootstrap interval "
             "(an interval that holds 0 means no difference was detected).", "",
             "| tier | clips | PSNR (dB) | SSIM | char acc | exact-line acc | PSNR minus first tier's, paired "
             "| SSIM minus first tier's, paired | paper PSNR | paper SSIM |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for tier, r in result["rows"].items():
        paper = r["paper"]
        lines.append(f"| {tier} | {r['clips']} | {_fmt_ci(r['psnr'], 2)} | {_fmt_ci(r['ssim'])} | "
                     f"{_fmt_ci(r['char_acc_gt'])} | {_fmt_ci(r['line_acc_gt'])} | "
                     f"{_fmt_ci(r.get('psnr_minus_' + r.get('paired_vs', '')), 2)} | "
                     f"{_fmt_ci(r.get('ssim_minus_' + r.get('paired_vs', '')), 4)} | {paper.get('psnr', '')} | "
                     f"{paper.get('ssim', '')} |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------- levers

# CellGen's design choices, each switched off alone at the same budget (``ncomp experiment cligen levers``).
LEVERS: dict[str, list[str]] = {
    "cellgen": [],
    "no caption layout (caption bytes only)": ["layout=false"],
    "no copy prior": ["copy_prior=false"],
    "no timing input (the network never reads the row windows)": ["timing_input=false"],
    "no timing at all (captions' timing never read)": ["timing_input=false", "timing_dropout=1.0", "timing=false"],
}
# Inference-only levers: the reference variant's weights, sampled differently (model config changes).
SAMPLING_LEVERS: dict[str, dict[str, Any]] = {
    "cellgen, 4 masked-diffusion passes": {"sample_steps": 4},
    "cellgen, no text constraint at sampling": {"constrain": False},
    "cellgen, captions' timing ignored at sampling": {"timing": False},
    "cellgen, typed rows not placed key by key": {"typing": False},
}


def _clip_scores(report: dict) -> dict[str, dict[str, float]]:
    """Per-clip PSNR, SSIM and grid-OCR scores against the true text (changed cells: clips that change)."""
    out = {}
    for c in report["per_clip"]:
        gt = c.get("ocr_grid_gt") or {}
        out[c["id"]] = {"psnr": c["psnr"], "ssim": c["ssim"], "char_acc": gt.get("char_acc"),
                        "line_acc": gt.get("line_acc"), "changed_char_acc": gt.get("changed_char_acc")}
    return out


LEVER_METRICS = (("psnr", 2), ("char_acc", 3), ("line_acc", 3), ("changed_char_acc", 3))


def levers_table(data: Path, out: Path, *, steps: int, seeds: tuple[int, ...], overrides: list[str],
                 preset: str = "cligen-cells", eval_clips: int | None = None, quick: bool = False,
                 progress: bool = True) -> dict[str, Any]:
    """Each of CellGen's levers off alone, equal steps, at every seed; scored on the test split's detailed
    captions (grid OCR; Tesseract is too slow for a table of runs), paired against the full design."""
    from neuralcomputer.eval.evaluate import EvalOptions
    from neuralcomputer.eval.run import evaluate_models
    from neuralcomputer.runtime.computer import NeuralComputer

    per_seed: dict[str, dict[int, dict]] = {}
    for seed in seeds:
        folder = out / f"seed-{seed}"
        runs = train_variants(preset, overrides + [f"seed={seed}"], data, folder, steps, LEVERS, progress)
        variants = [(name, run, {}) for name, run in runs.items()]
        variants += [(name, runs["cellgen"], change) for name, change in SAMPLING_LEVERS.items()]
        for i, (name, run, change) in enumerate(variants):
            target = folder / "eval" / f"v{i}"
            computer = NeuralComputer.load(run)
            computer.backend.config.update(change)  # a sampling setting of the same weights
            computer.backend.steps = int(computer.backend.config["sample_steps"])
            report = _finished_report(target, computer, eval_clips, "detailed")
            if report is None:
                report = evaluate_models([(name, computer)], data, target,
                                         options=EvalOptions(tesseract=False, limit=eval_clips), split="test",
                                         tier="detailed", seed=0, progress=progress)
            per_seed.setdefault(name, {})[seed] = _clip_scores(report)
    base = next(iter(LEVERS))
    rows: dict[str, Any] = {}
    for name, by_seed in per_seed.items():
        row: dict[str, Any] = {"seeds": {}}
        for seed, clips in by_seed.items():
            cell: dict[str, Any] = {}
            ref = per_seed[base][seed]
            for key, _ in LEVER_METRICS:
                values = [v[key] for v in clips.values() if v[key] is not None]
                cell[key] = mean_ci(values) if values else None
                if name != base:
                    diffs = [clips[i][key] - ref[i][key] for i in clips
                             if i in ref and clips[i][key] is not None and ref[i][key] is not None
                             and math.isfinite(clips[i][key]) and math.isfinite(ref[i][key])]
                    cell[f"{key}_minus_{base}"] = mean_ci(diffs) if diffs else None
            row["seeds"][seed] = cell
        rows[name] = row
    result = {"table": "levers", "preset": preset, "steps": steps, "seeds": list(seeds), "overrides": overrides,
              "data": str(data), "quick": quick, "reference": base, "rows": rows}
    _write(out, "levers", result, levers_markdown(result))
    return result


def levers_markdown(result: dict) -> str:
    base = result["reference"]
    lines = [f"# CellGen levers: {result['preset']}, {result['steps']} steps per variant, seeds "
             f"{', '.join(map(str, result['seeds']))}", "",
             _quick_banner(result) + f"Data: `{result['data']}` (test split, detailed captions). Each row switches one "
             f"lever off and trains the same steps; one cell per seed. Brackets: 95% bootstrap interval over "
             f"clips. Grid OCR against the true screen text; `changed` = the cells that differ between the first "
             f"and last true frame (copying the first frame scores 0 there). Paired: the mean per-clip "
             f"difference from `{base}` at the same seed.", "",
             "| variant | seed | PSNR (dB) | char acc | exact-line acc | changed-cell acc | PSNR minus "
             f"{base} | changed-cell acc minus {base} |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, row in result["rows"].items():
        for seed, c in row["seeds"].items():
            lines.append(f"| {name} | {seed} | {_fmt_ci(c['psnr'], 2)} | {_fmt_ci(c['char_acc'])} | "
                         f"{_fmt_ci(c['line_acc'])} | {_fmt_ci(c['changed_char_acc'])} | "
                         f"{_fmt_ci(c.get('psnr_minus_' + base), 2)} | {_fmt_ci(c.get('changed_char_acc_minus_' + base))} |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------- steps

def steps_table(data: Path, out: Path, *, steps: int, seeds: tuple[int, ...], overrides: list[str],
                preset: str = "cligen-tiny", quick: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train the default recipe with several seeds; validation metrics over steps, mean and spread."""
    runs = train_variants(preset, overrides, data, out, steps, {f"seed{s}": [f"seed={s}"] for s in seeds}, progress)
    curves = {str(seed): _val_history(runs[f"seed{seed}"]) for seed in seeds}
    by_step: dict[int, dict[str, list[float]]] = {}
    for history in curves.values():
        for row in history:
            for key in ("psnr", "ssim", "char_acc", "line_acc"):
                if row.get(key) is not None:
                    by_step.setdefault(int(row["step"]), {}).setdefault(key, []).append(float(row[key]))
    summary = {step: {k: {"mean": float(np.mean(v)), "sd": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0,
                          "min": float(np.min(v)), "max": float(np.max(v)), "n": len(v)} for k, v in m.items()}
               for step, m in sorted(by_step.items())}
    result = {"table": "steps", "preset": preset, "steps": steps, "seeds": list(seeds), "overrides": overrides,
              "data": str(data), "quick": quick, "curves": curves, "summary": summary, "paper": PAPER["steps"]}
    _write(out, "steps", result, steps_markdown(result))
    plot_steps(result, out / "steps.png")
    return result


def steps_markdown(result: dict) -> str:
    paper = result["paper"]
    lines = [f"# Training-step curves (CLIGen): {result['preset']}, {len(result['seeds'])} seeds x {result['steps']} steps",
             "", _quick_banner(result) + f"Data: `{result['data']}`; validation clips scored during training (EMA "
             "weights)" + (": CellGen's clips in cells, against the true clip through the same exact codec (char and "
             "exact-line accuracy: the cells and rows of 5 frames that read right, no OCR)"
             if result["preset"] == "cligen-cells" else "") + ". Mean +- sample SD over seeds [min, max]. "
             "Paper: PSNR/SSIM plateau near "
             f"{paper['plateau_step']:,} steps while char accuracy rises {paper['char_acc'][0]} -> "
             f"{paper['char_acc'][1]} and exact-line accuracy {paper['line_acc'][0]} -> {paper['line_acc'][1]} over "
             f"{paper['steps']:,} steps.", "",
             "| step | PSNR (dB) | SSIM | char acc | exact-line acc |", "|---:|---:|---:|---:|---:|"]

    def cell(s: dict | None, digits: int) -> str:
        if not s:
            return "n/a"
        return f"{s['mean']:.{digits}f} +- {s['sd']:.{digits}f} [{s['min']:.{digits}f}, {s['max']:.{digits}f}]"

    for step, m in result["summary"].items():
        lines.append(f"| {step} | {cell(m.get('psnr'), 2)} | {cell(m.get('ssim'), 3)} | {cell(m.get('char_acc'), 3)} "
                     f"| {cell(m.get('line_acc'), 3)} |")
    return "\n".join(lines) + "\n"


def plot_steps(result: dict, path: Path) -> Path:
    """Four panels (PSNR, SSIM, char acc, line acc): one thin line per seed, the mean bold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(14, 3.4))
    for ax, (key, label) in zip(axes, (("psnr", "PSNR (dB)"), ("ssim", "SSIM"), ("char_acc", "char acc (grid OCR)"),
                                       ("line_acc", "exact-line acc (grid OCR)")), strict=True):
        for seed, history in result["curves"].items():
            xs = [r["step"] for r in history if r.get(key) is not None]
            ax.plot(xs, [r[key] for r in history if r.get(key) is not None], "-", lw=0.8, alpha=0.6,
                    label=f"seed {seed}")
        steps = [int(s) for s, m in result["summary"].items() if key in m]
        ax.plot(steps, [result["summary"][s][key]["mean"] for s in result["summary"] if key in result["summary"][s]],
                "o-", color="black", lw=2, label="mean")
        ax.set_xlabel("training step")
        ax.set_title(label, fontsize=10)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    atomic_png(fig, path)
    plt.close(fig)
    return path


def atomic_png(fig: Any, path: Path) -> None:
    """Save a matplotlib figure as PNG atomically (no half-written plot after a crash)."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    atomic_write_bytes(path, buf.getvalue())


# ---------------------------------------------------------------------------------------- arithmetic

def arithmetic_table(model: Path, out: Path, *, n: int, seed: int = 0, steps: int | None = None,
                     modes: tuple[str, ...] = ("native", "reprompt", "hybrid"), quick: bool = False,
                     progress: bool = True) -> dict[str, Any]:
    """The arithmetic probe in each mode on the same ``n`` held-out problems.

    Also writes ``arithmetic-example.png``: the first problem's given frame above the last frame each
    mode rendered for it (the top rows of the screen, where the answer belongs)."""
    from neuralcomputer.eval.probes import arithmetic_problems, arithmetic_prompt_frame, probe_arithmetic
    from neuralcomputer.runtime.computer import NeuralComputer

    rows: dict[str, Any] = {}
    example = [arithmetic_prompt_frame(arithmetic_problems(n, seed)[0].expression)]
    for mode in modes:
        computer = NeuralComputer.load(model, steps=steps, seed=seed, hybrid=mode == "hybrid", engine="python")
        try:
            t0 = time.perf_counter()
            r = probe_arithmetic(computer, n=n, seed=seed, mode=mode, keep_last_frames=True)
            r["seconds"] = time.perf_counter() - t0
        finally:
            computer.close()
        example.append(r.pop("last_frames")[0])
        correct = sum(item["correct"] for item in r["items"])
        legible = sum(item["prompt_legible"] for item in r["items"])
        rows[mode] = {"accuracy": wilson(correct, r["n"]), "prompt_legible": wilson(legible, r["n"]),
                      "by_level": r["by_level"], "seconds": r["seconds"], "items": r["items"],
                      "paper": PAPER["arithmetic"].get(mode)}
    result = {"table": "arithmetic", "model": str(model), "n": n, "seed": seed, "sample_steps": steps,
              "quick": quick, "rows": rows}
    _write(out, "arithmetic", result, arithmetic_markdown(result))
    _write_example(example, out / "arithmetic-example.png")
    return result


def _write_example(frames: list[np.ndarray], path: Path, rows: int = 8, cell_height: int = 17) -> None:
    """Stack the top ``rows`` text rows of each frame, one strip under the other, split by a grey line."""
    import io

    from PIL import Image

    strips = []
    for frame in frames:
        strips += [frame[: rows * cell_height], np.full((2, frame.shape[1], 3), 96, np.uint8)]
    buf = io.BytesIO()
    Image.fromarray(np.concatenate(strips[:-1])).save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())


def arithmetic_markdown(result: dict) -> str:
    lines = [f"# Arithmetic probe: `{result['model']}`, {result['n']} held-out problems, seed {result['seed']}", "",
             _quick_banner(result) + "Native: the caption says only what was typed. Reprompt: it also quotes the "
             "right answer (the paper's reprompting). Hybrid: a real Python in a sandbox runs the expression and "
             "the runtime's caption quotes what it printed. The answer is read by grid OCR from the clip's last "
             "frame and must match exactly. \"prompt legible\": the `>>> expression` line itself was read back "
             "exactly (the answer cannot be found without it). Brackets: 95% Wilson interval.", "",
             "| mode | accuracy | prompt legible | paper |", "|---|---:|---:|---:|"]
    for mode, r in result["rows"].items():
        paper = "" if r["paper"] is None else f"{r['paper']:.2f}"
        lines.append(f"| {mode} | {_fmt_ci(r['accuracy'], 2)} | {_fmt_ci(r['prompt_legible'], 2)} | {paper} |")
    first = result["rows"][next(iter(result["rows"]))]["items"][0]
    lines += ["", f"![the first problem](arithmetic-example.png) The first problem, `{first['expression']}` "
              f"(answer {first['answer']}): the top rows of the given frame, then of the last frame rendered in "
              f"each mode ({', '.join(result['rows'])}), top to bottom."]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------- determinism

def _max_diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max())


def determinism_table(terminal: Path, desktop: Path | None, data: Path, out: Path, *, runs: int = 3,
                      steps: int | None = None, train_steps: int = 3, quick: bool = False) -> dict[str, Any]:
    """Bit-identity checks of sampling, threads, save/restore and training. Each row: max |diff| (0-255)."""
    import tempfile

    import torch
    from safetensors.torch import load_file

    from neuralcomputer.eval.probes import arithmetic_caption, arithmetic_problems, arithmetic_prompt_frame
    from neuralcomputer.runtime.computer import NeuralComputer

    rows: list[dict[str, Any]] = []

    def row(system: str, check: str, diffs: list[int], expect_equal: bool, note: str = "") -> None:
        worst = max(diffs) if diffs else None
        rows.append({"system": system, "check": check, "max_abs_diff": worst, "comparisons": len(diffs),
                     "identical": worst == 0, "expected": "identical" if expect_equal else "different",
                     "as_expected": (worst == 0) == expect_equal, "note": note})

    computer = NeuralComputer.load(terminal, steps=steps)
    problem = arithmetic_problems(1)[0]
    first, caption = arithmetic_prompt_frame(problem.expression), arithmetic_caption(problem, reprompt=False)
    frames = computer.clip_frames
    ref = np.asarray(computer.generate(first, caption, frames, 0))
    row("terminal", f"same inputs and seed, {runs} runs",
        [_max_diff(ref, np.asarray(computer.generate(first, caption, frames, 0))) for _ in range(runs - 1)], True)
    # a sampler that draws noise differs with the seed; CellGen's masked decoding takes the argmax, so
    # the seed has nothing to choose (the same inputs always give the same frames)
    seeded = getattr(computer.backend, "sampler", "") != "masked"
    row("terminal", "another seed", [_max_diff(ref, np.asarray(computer.generate(first, caption, frames, 1)))], not seeded,
        "the sampler is stochastic: determinism comes from seeding the noise" if seeded
        else "argmax decoding: no noise for a seed to choose")
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1 if threads > 1 else 2)
        other = np.asarray(computer.generate(first, caption, frames, 0))
    finally:
        torch.set_num_threads(threads)
    row("terminal", f"{threads} vs {1 if threads > 1 else 2} CPU threads", [_max_diff(ref, other)], True,
        "reductions split across threads may round differently")
    with tempfile.TemporaryDirectory() as tmp:
        computer.reset(first)
        computer.step({"type": "command", "text": "ls"})
        computer.save(Path(tmp) / "state")
        after = computer.step({"type": "command", "text": "pwd"}).frames
        computer.restore(Path(tmp) / "state")
        row("terminal", "save, restore, continue", [_max_diff(after, computer.step({"type": "command", "text": "pwd"}).frames)],
            True)
    computer.close()
    if desktop is not None:
        gui = NeuralComputer.load(desktop, steps=steps)
        action = {"type": "click", "x": 40, "y": 40, "button": 1, "count": 1}
        outs = []
        for _ in range(2):
            gui.reset()
            outs.append(np.concatenate([gui.step(action).frames, gui.step({"type": "move", "x": 90, "y": 60}).frames]))
        row("desktop", "same inputs and seed, 2 rollouts", [_max_diff(outs[0], outs[1])], True)
        with tempfile.TemporaryDirectory() as tmp:
            gui.reset()
            gui.step(action)
            gui.save(Path(tmp) / "state")
            after = gui.step({"type": "move", "x": 90, "y": 60}).frames
            gui.restore(Path(tmp) / "state")
            row("desktop", "save, restore, continue",
                [_max_diff(after, gui.step({"type": "move", "x": 90, "y": 60}).frames)], True)
        gui.close()
    with tempfile.TemporaryDirectory() as tmp:
        weights = []
        for k in range(2):
            run = train_variant("cligen-tiny", QUICK_OVERRIDES + ["val_every=1000"], data, Path(tmp) / f"run{k}",
                                train_steps, progress=False)
            weights.append(load_file(str(run / "model" / "transformer.safetensors")))
        diff = max(float((weights[0][k] - weights[1][k]).abs().max()) for k in weights[0])
        rows.append({"system": "training", "check": f"two runs, same seed and data, {train_steps} steps",
                     "max_abs_diff": diff, "comparisons": len(weights[0]), "identical": diff == 0,
                     "expected": "identical", "as_expected": diff == 0, "note": "transformer weights, tiny config"})
    result = {"table": "determinism", "terminal": str(terminal), "desktop": None if desktop is None else str(desktop),
              "data": str(data), "sample_steps": steps, "quick": quick, "rows": rows}
    _write(out, "determinism", result, determinism_markdown(result))
    return result


def determinism_markdown(result: dict) -> str:
    lines = ["# Determinism", "", _quick_banner(result) + f"Terminal model `{result['terminal']}`, desktop model "
             f"`{result['desktop']}`. Max |difference| of 8-bit pixel values (weights for the training row); "
             "0 means bit-identical. The paper lists consistent behaviour as an open requirement (diffusion "
             "samples are random); here every sample is a function of (inputs, seed).", "",
             "| system | check | max abs diff | result | expected | note |", "|---|---|---:|---|---|---|"]
    for r in result["rows"]:
        verdict = "identical" if r["identical"] else "different"
        lines.append(f"| {r['system']} | {r['check']} | {r['max_abs_diff']} | {verdict} | {r['expected']}"
                     f"{'' if r['as_expected'] else ' (NOT as expected)'} | {r['note']} |")
    return "\n".join(lines) + "\n"
