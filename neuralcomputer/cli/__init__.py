"""`ncomp`: the command line. Thin: parse, call the stage's function, print, exit.

Every bad input ends as one line on stderr (file, place, what was expected) and exit status 2;
imports of heavy modules happen inside commands so ``ncomp --help`` stays instant.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import click

from neuralcomputer.cli.bench import bench
from neuralcomputer.cli.common import _Group, _int_list, _model_specs, _size, desktop_eval_options
from neuralcomputer.errors import NCError


def _shard(value: str) -> tuple[int, int]:
    try:
        k, n = (int(x) for x in value.split("/"))
    except ValueError:
        raise click.BadParameter(f"{value!r}: expected K/N, e.g. 0/4") from None
    if not (n >= 1 and 0 <= k < n):
        raise click.BadParameter(f"{value!r}: expected 0 <= K < N")
    return k, n


_SHARD = click.option("--shard", default="0/1", show_default=True, callback=lambda c, p, v: _shard(v),
                      help="Do share K of N (N machines run K=0..N-1; outputs merge into one dataset).")
_WORKERS = click.option("--workers", type=click.IntRange(1, 256), default=1, show_default=True,
                        help="Parallel processes on this machine.")


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="neuralcomputer")
def main() -> None:
    """Neural Computers: record terminal sessions, render them to captioned clips, train and sample
    video models that are the computer, and measure them."""


main.add_command(bench)


@main.group(cls=_Group)
def data() -> None:
    """Make datasets: record real sessions, render recordings to clips, inspect datasets."""


def _list_generators(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    """``--list``: each generator's name and what its sessions do, then exit."""
    if not value or ctx.resilient_parsing:
        return
    from neuralcomputer.data.terminal.generators import GENERATORS

    for name, make in GENERATORS.items():
        what = (make.__doc__ or "").strip().splitlines()
        click.echo(f"{name}: {what[0]}" if what else name)
    ctx.exit(0)


@data.command()
@click.option("--generator", required=True, help="Session generator (see --list).")
@click.option("--list", is_flag=True, expose_value=False, is_eager=True, callback=_list_generators,
              help="List the session generators and exit.")
@click.option("--count", type=click.IntRange(1), default=1, show_default=True, help="Sessions in the whole job.")
@click.option("--seed", type=int, default=0, show_default=True, help="Job seed; session i is a function of (seed, i).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Folder for .cast files.")
@click.option("--clock", type=click.Choice(["virtual", "real"]), default="virtual", show_default=True,
              help="virtual: run as fast as programs go, typing times on a virtual clock; real: type in real time.")
@click.option("--cols", type=click.IntRange(20, 300), default=80, show_default=True)
@click.option("--rows", type=click.IntRange(5, 100), default=24, show_default=True)
@_SHARD
@_WORKERS
def record(generator: str, count: int, seed: int, out: Path, clock: str, cols: int, rows: int,
           shard: tuple[int, int], workers: int) -> None:
    """Record real shell sessions in a pty, one asciicast v2 file per session.

    Each session runs `bash --norc --noprofile` with a fixed prompt and size, a throwaway HOME and
    working directory, and types the generator's keystrokes with human-like timing."""
    from neuralcomputer.data.terminal.generators import GENERATORS
    from neuralcomputer.data.terminal.recorder import record_many

    if generator not in GENERATORS:
        raise NCError(f"unknown generator {generator!r} (expected one of {', '.join(sorted(GENERATORS))})")
    summary = record_many(generator, count, seed, out, shard=shard, workers=workers, clock=clock,
                          cols=cols, rows=rows, progress=True)
    click.echo(json.dumps(asdict(summary), default=str))
    if getattr(summary, "failed", None):
        sys.exit(1)


@data.command()
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Dataset folder.")
@click.option("--variant", type=click.Choice(["general", "clean"]), default="general", show_default=True,
              help="general: every clip; clean: drop static clips, emulator errors, content exceeding the grid.")
@click.option("--fps", type=click.IntRange(1, 60), default=15, show_default=True)
@click.option("--clip-seconds", type=click.FloatRange(0.2, 600), default=5.0, show_default=True)
@click.option("--font-size", type=click.IntRange(6, 64), default=13, show_default=True, help="Pixels.")
@click.option("--theme", default="dark", show_default=True, help="dark, light or solarized-dark.")
@click.option("--max-idle", type=click.FloatRange(0.1), default=2.0, show_default=True,
              help="Cap idle gaps (seconds), as asciinema players do.")
@click.option("--max-output-mb", type=click.FloatRange(0.001), default=64.0, show_default=True,
              help="Reject a recording with more output than this (escape-sequence floods).")
@click.option("--captioner", default=None, metavar="MODULE:CLASS",
              help="Hook for an external (e.g. LLM) captioner: a class implementing "
                   "neuralcomputer.data.terminal.captions.Captioner, built with no arguments. Default: templates.")
@_SHARD
@_WORKERS
def render(sources: tuple[Path, ...], out: Path, variant: str, fps: int, clip_seconds: float, font_size: int,
           theme: str, max_idle: float, max_output_mb: float, captioner: str | None, shard: tuple[int, int],
           workers: int) -> None:
    """Render recordings (.cast files or folders of them) into a captioned clip dataset.

    Bad recordings are skipped with a reason; a summary and a report under OUT/reports say what was
    rendered and what was not."""
    from neuralcomputer.data.terminal.build import BuildOptions, render_dataset
    from neuralcomputer.data.terminal.clips import ClipOptions
    from neuralcomputer.data.terminal.render import THEMES

    if theme not in THEMES:
        raise NCError(f"unknown theme {theme!r} (expected one of {', '.join(THEMES)})")
    clip = ClipOptions(fps=fps, clip_seconds=clip_seconds, font_size=font_size, theme=theme, max_idle=max_idle,
                       max_output_chars=int(max_output_mb * 1e6))
    options = BuildOptions(variant=variant, clip=clip)
    summary = render_dataset(list(sources), out, options, shard=shard, workers=workers,
                             captioner=_load_captioner(captioner) if captioner else None)
    for why in summary.failed.values():
        click.echo(f"skipped: {why}", err=True)
    click.echo(json.dumps(asdict(summary)))
    if summary.failed and not summary.rendered:
        sys.exit(1)


@data.command("collect-desktop")
@click.option("--policy", required=True, help="random-slow, random-fast or scripted.")
@click.option("--episodes", type=click.IntRange(1), default=1, show_default=True, help="Episodes in the whole job.")
@click.option("--seconds", type=click.FloatRange(0.5, 3600), default=10.0, show_default=True, help="Length of an episode.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Dataset folder.")
@click.option("--fps", type=click.IntRange(1, 60), default=15, show_default=True)
@click.option("--size", default="1024x768", show_default=True, callback=lambda c, p, v: _size(v),
              help="Screen size WIDTHxHEIGHT.")
@click.option("--seed", type=int, default=0, show_default=True, help="Job seed; episode i is a function of (seed, i).")
@_SHARD
@_WORKERS
def collect_desktop_cmd(policy: str, episodes: int, seconds: float, out: Path, fps: int, size: tuple[int, int],
                        seed: int, shard: tuple[int, int], workers: int) -> None:
    """Record a policy driving a real XFCE4 desktop (Xvfb) into a dataset of desktop clips.

    Each episode runs in a fresh desktop with a clean profile: frames at a fixed FPS with the cursor
    drawn in, the read-back pointer, and per-frame raw events and meta-actions (clips/<id>.actions.jsonl).
    Crashed episodes are cut or retried (3 attempts); a report under OUT/reports lists what was skipped."""
    from neuralcomputer.data.desktop.collect import collect_desktop

    summary = collect_desktop(policy, episodes, seconds, out, workers=workers, fps=fps, size=size, seed=seed,
                              shard=shard, progress=True)
    for clip_id, why in summary.failed.items():
        click.echo(f"skipped {clip_id}: {'; '.join(why)}", err=True)
    click.echo(json.dumps(asdict(summary)))
    if summary.failed and not summary.collected:
        sys.exit(1)


@data.command()
@click.argument("dataset", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def info(dataset: Path, as_json: bool) -> None:
    """Statistics of a dataset: clips, frames, hours, splits, grids, caption lengths per tier."""
    from neuralcomputer.data.dataset import dataset_info

    stats = dataset_info(dataset)
    if as_json:
        click.echo(json.dumps(stats))
        return
    click.echo(f"{stats['root']}: {stats['clips']} clips, {stats['frames']} frames, {stats['hours']:.3f} h, "
               f"{stats['sessions']} sessions")
    for key in ("splits", "variants", "generators", "grids", "frame_sizes"):
        click.echo(f"  {key}: " + ", ".join(f"{k}={v}" for k, v in sorted(stats[key].items())))
    for tier, s in stats["captions"].items():
        click.echo(f"  captions {tier}: {s['words']['mean']} words (min {s['words']['min']}, max {s['words']['max']}), "
                   f"{s['chars']['mean']} chars")


@data.command()
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Output .mp4")
@click.option("--clip", "clip_id", default=None, help="With a DATASET source: the clip id (default: the first).")
@click.option("--fps", type=click.IntRange(1, 60), default=15, show_default=True)
@click.option("--font-size", type=click.IntRange(6, 64), default=13, show_default=True)
@click.option("--theme", default="dark", show_default=True)
def preview(source: Path, out: Path, clip_id: str | None, fps: int, font_size: int, theme: str) -> None:
    """Write an MP4 to watch: a whole recording (.cast) or one clip of a dataset."""
    from neuralcomputer.data.terminal.preview import preview_cast, preview_clip

    if source.is_dir():
        n = preview_clip(source, out, clip_id)
    else:
        n = preview_cast(source, out, fps=fps, font_size=font_size, theme=theme)
    click.echo(json.dumps({"out": str(out), "frames": n}))


def _load_captioner(spec: str):
    import importlib

    module_name, _, class_name = spec.partition(":")
    try:
        return getattr(importlib.import_module(module_name), class_name)()
    except (ImportError, AttributeError, ValueError, TypeError) as exc:
        raise NCError(f"--captioner {spec!r}: cannot load it ({exc}); expected MODULE:CLASS") from exc


_EVAL_OPTIONS = [
    click.option("--tesseract/--no-tesseract", default=True, show_default=True,
                 help="Run the paper's Tesseract OCR metric (about 1 s per frame, 5 frames per clip and side)."),
    click.option("--lpips-weights", default=None, help="File or folder with alexnet-owt-7be5be79.pth and alex.pth."),
    click.option("--fvd-weights", default=None, help="File or folder with r3d_18-b3b3357e.pth."),
    click.option("--limit", type=click.IntRange(1), default=None, help="Score at most this many clips."),
    click.option("--font-size", type=click.IntRange(6, 64), default=13, show_default=True),
    click.option("--theme", default="dark", show_default=True),
]


def _eval_options(f):
    for option in reversed(_EVAL_OPTIONS):
        f = option(f)
    return f


def _print_headline(report: dict, out: Path) -> None:
    keys = ("clips", "psnr", "ssim", "lpips", "fvd", "ocr_tesseract", "ocr_grid", "ocr_grid_gt", "reasons")
    click.echo(json.dumps({k: report.get(k) for k in keys}))
    click.echo(f"report: {out / 'report.json'}, {out / 'report.md'}", err=True)


@main.group(cls=_Group, invoke_without_command=True)
@click.option("--model", "models", multiple=True,
              help="Model to evaluate (repeat for several checkpoints: adds curves over steps). "
                   "Stand-ins: builtin:copy-first-frame, builtin:reference-oracle, builtin:caption-renderer.")
@click.option("--data", "dataset", type=click.Path(path_type=Path), help="Reference dataset.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Report folder.")
@click.option("--split", default="test", show_default=True, help="train, val, test or all.")
@click.option("--tier", type=click.Choice(["semantic", "regular", "detailed"]), default="detailed", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@_eval_options
@click.pass_context
def eval(ctx: click.Context, models: tuple[str, ...], dataset: Path | None, out: Path | None, split: str, tier: str,
         seed: int, **opts) -> None:
    """Generate a clip for every reference clip and score it (report.json, report.md, PNG plots).

    `ncomp eval videos --pred DIR --ref DIR --out DIR` scores clips generated elsewhere."""
    if ctx.invoked_subcommand is not None:
        return
    if not models or dataset is None or out is None:
        raise click.UsageError("ncomp eval needs --model, --data and --out (or the `videos` subcommand)")
    from neuralcomputer.eval.evaluate import EvalOptions
    from neuralcomputer.eval.run import evaluate_models
    from neuralcomputer.runtime.computer import load_generator

    loaded = [(m, load_generator(m, dataset=dataset)) for m in models]
    report = evaluate_models(loaded, dataset, out, options=EvalOptions(**opts), split=None if split == "all" else split,
                             tier=tier, seed=seed)
    _print_headline(report, out)


@eval.command("videos")
@click.option("--pred", type=click.Path(path_type=Path), required=True,
              help="Generated clips: a dataset, or a folder of <id>.npz (array 'frames') / <id>.mp4.")
@click.option("--ref", type=click.Path(path_type=Path), required=True, help="Reference dataset (or folder).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@_eval_options
def eval_videos(pred: Path, ref: Path, out: Path, **opts) -> None:
    """Score generated clips against references with the same ids."""
    from neuralcomputer.eval.evaluate import EvalOptions, evaluate_videos
    from neuralcomputer.eval.report import write_report
    from neuralcomputer.eval.videos import VideoSet

    pred_set, ref_set = VideoSet.open(pred), VideoSet.open(ref)
    report = evaluate_videos(pred_set, ref_set, EvalOptions(**opts))
    write_report(out, report, pred_set, ref_set)
    _print_headline(report, out)


@eval.command("card")
@click.option("--model", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Model directory with a check.json (e.g. models/cligen-tiny).")
@click.option("--work", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the rebuilt check set and its report (default: a temporary folder).")
@click.option("--card", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Hold the model to this model directory's check.json instead of its own (e.g. a model "
                   "retrained from models/cligen-tiny's card: --model runs/X --card models/cligen-tiny).")
@click.option("--write", is_flag=True, help="Measure the check set and write the model's check.json instead.")
def eval_card(model: Path, work: Path | None, card: Path | None, write: bool) -> None:
    """Rebuild a small fresh held-out set (real sessions or a real desktop), score the model, and fail
    when a metric leaves the tolerance its check.json gives (the model card's promise)."""
    import tempfile

    from neuralcomputer.experiments.cards import check_card, write_check

    with tempfile.TemporaryDirectory(prefix="ncomp-card-") as tmp:
        target = work or Path(tmp)
        if write:
            if card is not None:
                raise NCError("--write measures a model's own check.json; it takes no --card")
            spec = write_check(model, target)
            click.echo(json.dumps({"model": str(model), "metrics": spec["metrics"]}))
            return
        result = check_card(model, target, card)
    for row in result["rows"]:
        measured = "n/a" if row["measured"] is None else f"{row['measured']:.4f}"
        click.echo(f"{row['metric']:>12}: measured {measured}, card {row['expected']:.4f} "
                   f"+- {row['tolerance']}  {'ok' if row['ok'] else 'OUT OF TOLERANCE'}")
    click.echo(json.dumps({k: v for k, v in result.items() if k != "rows"}))
    if not result["ok"]:
        raise NCError(f"{model}: held-out metrics outside the card's tolerance (see above)")


@eval.command("desktop")
@desktop_eval_options(4, "Desktop dataset (episodes with actions).")
@click.option("--frames", type=click.IntRange(2), default=31, show_default=True, help="First frames of each episode.")
@click.option("--seed", type=int, default=0, show_default=True)
def eval_desktop(model: Path, dataset: Path, out: Path, split: str, episodes: int, frames: int, seed: int) -> None:
    """Score a desktop (GUIWorld) model: rollouts under the true actions and one-step predictions
    (PSNR, SSIM, +15 after actions, cursor hit rate), beside copy-the-first/previous-frame baselines."""
    from neuralcomputer.experiments.guiworld import desktop_report

    result = desktop_report(model, dataset, out, split, episodes, frames, seed)
    row = next(iter(result["rows"].values()))
    keys = ("psnr", "ssim", "plus15_ssim", "tf_psnr", "tf_ssim", "cursor_hit", "rollout_frames_per_s")
    click.echo(json.dumps({k: row.get(k) for k in keys} | {"baselines": result["baselines"]}))
    click.echo(f"report: {out / 'report.json'}, {out / 'report.md'}", err=True)


@eval.command("desktop-targets")
@desktop_eval_options(8, "Desktop dataset recorded cursor-free (this version's collect-desktop).")
@click.option("--frames", type=click.IntRange(16), default=150, show_default=True,
              help="Rollout length (frames from each episode's start).")
def eval_desktop_targets(model: Path, dataset: Path, out: Path, split: str, episodes: int, frames: int) -> None:
    """Issue 17's desktop targets beside their baselines: the cursor instrument's ceiling, one-step
    PSNR/SSIM/changed_psnr, 31- and 150-frame rollouts, cursor hit rate and the action effect."""
    from neuralcomputer.data.dataset import atomic_write_bytes
    from neuralcomputer.experiments.desktop_targets import targets_markdown, targets_report

    result = targets_report(model, dataset, out, split, episodes, long_frames=frames)
    atomic_write_bytes(out / "targets.md", targets_markdown(result).encode())
    click.echo(targets_markdown(result))
    click.echo(f"report: {out / 'targets.json'}, {out / 'targets.md'}", err=True)


@main.group(cls=_Group)
def probe() -> None:
    """Probes: arithmetic (can the model compute?) and determinism (same inputs, same frames?)."""


@probe.command("arithmetic")
@click.option("--model", required=True, help="Model, or a stand-in such as builtin:caption-renderer.")
@click.option("--n", "count", type=click.IntRange(1, 1000), default=100, show_default=True,
              help="Problems drawn from the 1,000 held-out ones.")
@click.option("--reprompt", is_flag=True, help="Quote the correct answer in the caption (the paper's reprompting).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--frames", "num_frames", type=click.IntRange(2), default=None,
              help="Clip length read (default: the model's whole clip; the answer is read from its last frame).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write the full result JSON here.")
def probe_arithmetic_cmd(model: str, count: int, reprompt: bool, seed: int, num_frames: int, out: Path | None) -> None:
    """Exact-match accuracy of the answers the model renders for held-out arithmetic problems."""
    from neuralcomputer.data.dataset import atomic_write_bytes
    from neuralcomputer.eval.probes import probe_arithmetic
    from neuralcomputer.runtime.computer import load_generator

    result = probe_arithmetic(load_generator(model), n=count, seed=seed, reprompt=reprompt, num_frames=num_frames)
    if out is not None:
        atomic_write_bytes(out, json.dumps(result, indent=2).encode())
    click.echo(json.dumps({k: v for k, v in result.items() if k != "items"}))


@probe.command("hybrid")
@click.option("--model", required=True, help="A terminal model (run folder, checkpoint or model directory).")
@click.option("--command", "commands", multiple=True,
              help="A command to type (repeatable; default: ten held-out commands, see eval/probes.py).")
@click.option("--steps", type=click.IntRange(1), default=None, help="Sampling steps (default: the model's).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write the full result JSON here.")
def probe_hybrid_cmd(model: str, commands: tuple[str, ...], steps: int | None, out: Path | None) -> None:
    """Hybrid mode: the share of the real shell's screen lines the model's last frame shows exactly."""
    from neuralcomputer.data.dataset import atomic_write_bytes
    from neuralcomputer.eval.probes import HYBRID_COMMANDS, probe_hybrid
    from neuralcomputer.runtime.computer import NeuralComputer

    computer = NeuralComputer.load(model, steps=steps, hybrid=True)
    try:
        result = probe_hybrid(computer, list(commands) or HYBRID_COMMANDS)
    finally:
        computer.close()
    if out is not None:
        atomic_write_bytes(out, json.dumps(result, indent=2).encode())
    click.echo(json.dumps({k: v for k, v in result.items() if k != "items"}))


@probe.command("determinism")
@click.option("--model", required=True)
@click.option("--runs", type=click.IntRange(2, 100), default=5, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--frames", "num_frames", type=click.IntRange(1), default=15, show_default=True)
def probe_determinism_cmd(model: str, runs: int, seed: int, num_frames: int) -> None:
    """Same first frame, caption and seed, N times: fraction bit-identical, mean pixel variance."""
    from neuralcomputer.data.terminal.generators.arithmetic import heldout_problems
    from neuralcomputer.eval.probes import arithmetic_caption, arithmetic_prompt_frame, probe_determinism
    from neuralcomputer.runtime.computer import load_generator

    problem = heldout_problems()[0]
    result = probe_determinism(load_generator(model), arithmetic_prompt_frame(problem.expression),
                               arithmetic_caption(problem, reprompt=False), runs=runs, seed=seed, num_frames=num_frames)
    click.echo(json.dumps(result))


@main.command(context_settings={"ignore_unknown_options": False})
@click.option("--preset", required=True, help="cligen-tiny, cligen-small, wan2.1-i2v-1.3b, wan2.1-i2v-14b, cell-ae.")
@click.option("--data", "dataset", type=click.Path(path_type=Path), help="Training dataset.  [required]")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Run folder (created, or resumed from its last checkpoint).  [required]")
@click.option("--steps", type=click.IntRange(1), default=None, help="Total optimizer steps (default: the preset's).")
@click.option("--show-config", is_flag=True, help="Print the resolved config as JSON and exit.")
@click.option("--train-tokenizer", is_flag=True,
              help="Train a new tokenizer first, inside the run (default: a bundled model's, when one has the "
                   "preset's tokenizer; an override of tokenizer_steps or tokenizer_latent_noise also asks for one).")
@click.argument("overrides", nargs=-1)
def train(preset: str, dataset: Path | None, out: Path | None, steps: int | None, show_config: bool,
          train_tokenizer: bool, overrides: tuple[str, ...]) -> None:
    """Train a model (or resume a run). Overrides: key=value, e.g. lr=1e-4 num_layers=4 tier=detailed.

    Keys are leaf names (or dotted paths like model.transformer.num_layers) of the preset's config,
    typed by the values they replace; `--show-config` lists them. Multi-GPU: `accelerate launch
    --multi_gpu -m neuralcomputer.cli train ...` or `torchrun --nproc_per_node N -m neuralcomputer.cli
    train ...`."""
    from neuralcomputer.config import apply_overrides, preset_config

    config = apply_overrides(preset_config(preset), list(overrides) + ([f"train.steps={steps}"] if steps else []))
    if show_config:
        click.echo(json.dumps(config, indent=2))
        return
    if dataset is None or out is None:
        raise click.UsageError("ncomp train needs --data and --out")
    from neuralcomputer.demo import bundled_models
    from neuralcomputer.train.loop import train as run_train
    from neuralcomputer.train.tokenizer_choice import choose_tokenizer

    try:
        bundled = bundled_models()
    except NCError:  # an installed package without the source checkout's models/
        bundled = {}
    config, said = choose_tokenizer(config, out, list(overrides), train_new=train_tokenizer, bundled=bundled)
    click.echo(said, err=True)
    try:
        run = run_train(config, dataset, out)
    finally:
        # Under torchrun the process group's gloo threads must be joined before the interpreter exits: left
        # to exit, a rank aborted now and then ("terminate called without an active exception", SIGABRT)
        # after its run had finished and saved
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    click.echo(f"run: {run} (model: {run / 'model'})", err=True)


MAX_IMAGE_SIDE = 8192  # a screenshot is smaller; larger would take gigabytes to decode


def _read_png(path: Path, size: tuple[int, int] | None = None):
    """An image as ``(H, W, 3)`` uint8; ``size`` ``(W, H)``: the one size accepted. Its size is checked from
    the header, before anything is decoded (PIL refuses huge images with a DecompressionBombError)."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # the check below says it in our words
    try:
        with Image.open(path) as im:
            w, h = im.size
            if size is not None and (w, h) != tuple(size):
                raise NCError(f"{path}: {w}x{h} pixels; expected the model's frame size {size[0]}x{size[1]}")
            if max(w, h) > MAX_IMAGE_SIDE:
                raise NCError(f"{path}: {w}x{h} pixels; expected a screenshot of at most "
                              f"{MAX_IMAGE_SIDE}x{MAX_IMAGE_SIDE}")
            return np.asarray(im.convert("RGB"))
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise NCError(f"{path}: not a readable image ({e}); expected a PNG screenshot") from None
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def _caption_text(caption: str | None, caption_file: Path | None) -> str:
    """The caption from ``--caption`` or ``--caption-file`` (UTF-8; one final newline is not part of it)."""
    if (caption is None) == (caption_file is None):
        raise NCError("give the caption with --caption TEXT or --caption-file FILE (one of them)")
    where = "--caption"
    if caption_file is not None:
        where = str(caption_file)
        try:
            caption = caption_file.read_bytes().decode("utf-8").removesuffix("\n").removesuffix("\r")
        except UnicodeDecodeError as e:
            raise NCError(f"{caption_file}: not UTF-8 (byte {e.start}); expected a caption in UTF-8 text") from None
        except OSError as e:
            raise NCError(f"{caption_file}: cannot read it ({e.strerror or e}); expected a caption file") from None
    if not caption.strip():
        raise NCError(f"{where}: blank caption; expected what happens on the screen "
                      "(e.g. \"The user types `ls`. ...\")")
    return caption


@main.command()
@click.option("--model", required=True, type=click.Path(path_type=Path),
              help="Run folder (its latest checkpoint), checkpoint, or exported model directory.")
@click.option("--first-frame", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="PNG of the first screen, at the model's frame size.")
@click.option("--caption", default=None, help="What happens (a detailed caption quotes commands and output).")
@click.option("--caption-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="The caption from a UTF-8 file instead (one argument holds at most 128 KiB).")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Lossless .mp4, or a folder that receives frame-000.png, frame-001.png, ...")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--steps", type=click.IntRange(1), default=None, help="Sampling steps (default: the model's).")
@click.option("--sampler", type=click.Choice(["euler", "unipc"]), default=None)
@click.option("--guidance", type=float, default=None, help="Classifier-free guidance scale (1 = off).")
@click.option("--frames", "num_frames", type=click.IntRange(1), default=None,
              help="Frames at the data rate (default: the model's span, e.g. 61 for 5 samples 15 apart).")
@click.option("--fast", is_flag=True, help="Allow non-deterministic kernels (default: bit-identical repeats).")
def sample(model: Path, first_frame: Path, caption: str | None, caption_file: Path | None, out: Path, seed: int,
           steps: int | None, sampler: str | None, guidance: float | None, num_frames: int | None, fast: bool) -> None:
    """Generate a clip from a first frame and a caption. Same inputs and seed give byte-identical files."""
    from neuralcomputer.pipelines.cligen import write_clip
    from neuralcomputer.pipelines.load import load_pipeline

    caption = _caption_text(caption, caption_file)
    pipe = load_pipeline(model, sampler=sampler, steps=steps, guidance_scale=guidance, deterministic=not fast)
    cfg = pipe.model.config
    frame = _read_png(first_frame, (int(cfg["width"]), int(cfg["height"])) if "width" in cfg else None)
    pipe.check_frame(frame)
    from neuralcomputer.models.text import caption_bytes

    if cfg["text"]["kind"] == "bytes":
        try:
            caption_bytes(caption, int(cfg["text"]["max_len"]))
        except NCError as exc:
            raise NCError(f"{caption_file}: {exc}" if caption_file else str(exc)) from None
    frames = pipe.generate(frame, caption, num_frames or (pipe.num_frames - 1) * pipe.stride + 1, seed)
    write_clip(out, frames, fps=pipe.fps)
    click.echo(f"wrote {len(frames)} frames to {out}", err=True)


@main.command()
@click.option("--model", required=True, type=click.Path(path_type=Path),
              help="GUIWorld run folder (its latest checkpoint), checkpoint, or exported model directory.")
@click.option("--first-frame", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="PNG of the first screen (resized to the model's frame size).")
@click.option("--actions", "actions_path", type=click.Path(path_type=Path), required=True,
              help="ACTIONS.jsonl: one JSON object per frame (the format of neuralcomputer.data.desktop.actions).")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Lossless .mp4, or a folder that receives frame-000.png, frame-001.png, ...")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--steps", type=click.IntRange(1), default=None, help="Denoising steps per frame (default: the model's).")
@click.option("--sampler", type=click.Choice(["euler", "unipc"]), default=None)
@click.option("--fast", is_flag=True, help="Allow non-deterministic kernels (default: bit-identical repeats).")
def rollout(model: Path, first_frame: Path, actions_path: Path, out: Path, seed: int, steps: int | None,
            sampler: str | None, fast: bool) -> None:
    """Generate a desktop, frame by frame, from a first frame and an action stream (GUIWorld)."""
    import numpy as np
    from tqdm import tqdm

    from neuralcomputer.data.desktop.actions import read_actions
    from neuralcomputer.pipelines.cligen import write_clip
    from neuralcomputer.runtime.computer import NeuralComputer

    computer = NeuralComputer.load(model, steps=steps, sampler=sampler, seed=seed, deterministic=not fast)
    if computer.kind != "desktop":
        raise NCError(f"{model}: a terminal model; rollouts need a desktop (GUIWorld) model (see ncomp sample)")
    actions = read_actions(actions_path, computer.fps)
    frames = [computer.reset(_read_png(first_frame), pointer=actions[0].pointer)[None]]
    stride = int(computer.backend.model.config["frame_stride"])
    with tqdm(desc="rollout", unit="frame", leave=False) as bar:
        # one runtime step per generated frame: the input of the records it spans, the pointer it leaves
        for i in range(0, len(actions) - stride, stride):
            span = actions[i:i + stride]
            result = computer.step({"type": "frame", "events": [e for r in span for e in r.events],
                                    "meta": [m for r in span for m in r.meta],
                                    "pointer": list(actions[i + stride].pointer)})
            frames.append(result.frames)
            bar.update(1)
    video = np.concatenate(frames)
    if len(video) < len(actions):  # a last partial step: its frames hold the last one
        video = np.concatenate([video, np.repeat(video[-1:], len(actions) - len(video), 0)])
    write_clip(out, video, fps=computer.fps)
    timings = [r["timings"] for r in computer.history]
    click.echo(f"wrote {len(video)} frames to {out} ({len(timings)} generated: denoiser "
               f"{sum(t['context_s'] + t['denoise_s'] for t in timings):.2f} s, "
               f"decoder {sum(t['decode_s'] for t in timings):.2f} s)", err=True)


@main.command()
@click.option("--model", required=True, type=click.Path(path_type=Path), help="Run folder or checkpoint.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--memory-data", type=click.Path(exists=True, file_okay=False, path_type=Path), multiple=True,
              help="DeskDelta only: (re)build the transition memory from this desktop dataset's train split "
                   "(repeat it to store the train splits of several).")
@click.option("--half", is_flag=True,
              help="DeskDelta only: store the network's weights as float16 (half the bytes; loaded as float32).")
def export(model: Path, out: Path, memory_data: tuple[Path, ...], half: bool) -> None:
    """Export a run's latest weights (EMA when kept) as a model directory: config.json + safetensors
    (and a DeskDelta model's transition memory, memory.npz)."""
    from neuralcomputer.models.cligen import read_model_config
    from neuralcomputer.pipelines.cligen import export_model, resolve_model_dir

    if (memory_data or half) and read_model_config(resolve_model_dir(model)).get("kind") != "guiworld-delta":
        raise NCError(f"{model}: --memory-data and --half are for DeskDelta (guiworld-delta) models only")
    export_model(model, out)
    try:
        if half:
            from neuralcomputer.models.deskdelta import DeskDeltaModel

            DeskDeltaModel.halve_weights(out)
        if memory_data:
            from neuralcomputer.train.deskdelta import build_memory

            memory = build_memory(out, list(memory_data))
            click.echo(f"transition memory: {len(memory)} transitions, {memory.changes} distinct changes", err=True)
    except BaseException:  # no half-made model directory
        import shutil

        shutil.rmtree(out, ignore_errors=True)
        raise
    click.echo(f"exported to {out}", err=True)


@main.group(cls=_Group)
def experiment() -> None:
    """Reproduce the paper's tables at tiny scale (train the variants, evaluate, write the table)."""


@experiment.command("desktop-levers")
@click.option("--data", "dataset", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Desktop dataset to train on (cursor-free recordings).")
@click.option("--eval-data", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Held-out desktop dataset every variant is scored on.")
@click.option("--eval-split", default="all", show_default=True, help="train, val, test or all.")
@click.option("--eval-episodes", type=click.IntRange(1), default=8, show_default=True)
@click.option("--eval-frames", type=click.IntRange(16), default=150, show_default=True, help="Rollout length.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Folder for runs and table.")
@click.option("--steps", type=click.IntRange(1), default=600, show_default=True, help="Training steps per run.")
@click.option("--seeds", default="0,1", show_default=True, metavar="S,S,...")
@click.option("--variant", "variants", multiple=True, help="Only these variants (the full design always runs).")
@click.argument("overrides", nargs=-1)
def experiment_desktop_levers(dataset: Path, eval_data: Path, eval_split: str, eval_episodes: int, eval_frames: int,
                              out: Path, steps: int, seeds: str, variants: tuple[str, ...],
                              overrides: tuple[str, ...]) -> None:
    """DeskDelta's levers (copy prior, change curriculum, input history, coarse attention) each switched
    off at equal budget and seeds, scored by the desktop targets report; writes OUT/levers.md."""
    from neuralcomputer.experiments.desktop_levers import levers_markdown, run_levers

    try:
        seed_list = [int(x) for x in seeds.split(",") if x.strip()]
    except ValueError:
        raise NCError(f"--seeds {seeds}: expected integers separated by commas") from None
    result = run_levers(dataset, eval_data, out, steps, seed_list, list(overrides), eval_split, eval_episodes,
                        eval_frames, list(variants) or None)
    click.echo(levers_markdown(result))


@experiment.command("desktop-recall")
@click.option("--model", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="DeskDelta model directory with a transition memory (memory.npz).")
@click.option("--data", "dataset", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Desktop dataset whose training episodes are folded (the memory's own).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Folder for the table.")
@click.option("--setting", "settings", multiple=True, required=True, metavar="NAME:KEY=VALUE;...",
              help="A recall setting to score, e.g. 'no patch:patch_weight=0;typing=false'; 'bundled:' is the model's own. "
                   "The first is the reference of the paired differences.")
@click.option("--policies", default="scripted,random-slow", show_default=True,
              help="Policies whose training episodes are held out, comma-separated.")
@click.option("--folds", type=click.IntRange(1), default=3, show_default=True)
@click.option("--per-policy", type=click.IntRange(1), default=3, show_default=True,
              help="Episodes of each policy held out per fold.")
@click.option("--extra-data", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Another desktop dataset whose train split every fold's memory also stores (never held out).")
def experiment_desktop_recall(model: Path, dataset: Path, out: Path, settings: tuple[str, ...], policies: str,
                              folds: int, per_policy: int, extra_data: tuple[Path, ...]) -> None:
    """Transition-memory settings scored on folds of held-out training episodes (the memory needs no
    training, so a setting is chosen on far more cases than the val split holds); writes OUT/recall.md."""
    from neuralcomputer.experiments.desktop_recall import parse_setting, recall_cv, recall_markdown

    parsed = [parse_setting(s) for s in settings]
    if len({name for name, _ in parsed}) < len(parsed):
        raise NCError("--setting: two settings share a name")
    result = recall_cv(model, dataset, out, parsed, [p.strip() for p in policies.split(",") if p.strip()],
                       folds, per_policy, list(extra_data))
    click.echo(recall_markdown(result))
    click.echo(f"report: {out / 'recall.json'}, {out / 'recall.md'}", err=True)


@experiment.command("guiworld")
@click.argument("table", type=click.Choice(["injection", "cursor", "actions", "data"]))
@click.option("--data", "datasets", multiple=True, metavar="[NAME=]DATASET",
              help="Desktop dataset; for the data table one per source, e.g. --data scripted=datasets/desktop-scripted. "
                   "Required unless --quick.")
@click.option("--quick", is_flag=True,
              help="Tiny real data collected on the spot, a tiny model, a few steps: checks the whole pipeline, "
                   "not the result.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Folder for runs and table.")
@click.option("--steps", type=click.IntRange(1), default=None, help="Training steps per variant.  [default: 300; 3 with --quick]")
@click.option("--eval-data", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Dataset whose episodes score every variant (default: the last --data; with --quick and no "
                   "--data, a held-out quick episode).")
@click.option("--eval-split", default="test", show_default=True, help="train, val, test or all (a held-out dataset).")
@click.option("--eval-episodes", type=click.IntRange(1), default=None, help="Held-out episodes scored per variant.  [default: 4; 1 with --quick]")
@click.option("--eval-frames", type=click.IntRange(2), default=None, help="Frames rolled out per episode.  [default: 31; 5 with --quick]")
@click.option("--seeds", default=None, metavar="S,S,...",
              help="Repeat the table at these training seeds (in OUT/seed-S) and write OUT/TABLE-seeds.md: each "
                   "difference beside the seed-to-seed spread.")
@click.option("--preset", default="guiworld-tiny", show_default=True)
@click.argument("overrides", nargs=-1)
def experiment_guiworld(table: str, datasets: tuple[str, ...], quick: bool, out: Path, steps: int | None,
                        eval_data: Path | None, eval_split: str, eval_episodes: int | None, eval_frames: int | None,
                        seeds: str | None, preset: str, overrides: tuple[str, ...]) -> None:
    """One of the paper's GUIWorld ablation tables: injection, cursor, actions (raw vs meta) or data source."""
    from neuralcomputer.experiments.guiworld import QUICK_OVERRIDES, quick_data, run_seeds, run_table

    if not datasets and not quick:
        raise NCError("experiment guiworld needs --data DATASET (or --quick for a pipeline check on tiny fresh data)")
    data: dict[str, Path] = {}
    for spec in datasets:
        name, _, path = spec.rpartition("=")
        path = Path(path)
        if not path.is_dir():
            raise NCError(f"--data {spec}: no such dataset folder")
        data[name or path.name] = path
    if quick:
        if not data:
            data, quick_eval = quick_data(table, out)
            eval_data = eval_data or quick_eval
        overrides = (*QUICK_OVERRIDES, *overrides)  # the user's overrides still win
    common = dict(eval_split=eval_split, eval_episodes=eval_episodes or (1 if quick else 4),
                  eval_frames=eval_frames or (5 if quick else 31), preset=preset, quick=quick)
    steps = steps or (3 if quick else 300)
    if seeds is not None:
        run_seeds(table, _int_list(seeds, "--seeds"), data, out, steps, list(overrides), eval_data, **common)
        name = f"{table}-seeds"
    else:
        run_table(table, data, out, steps, list(overrides), eval_data, **common)
        name = table
    click.echo((out / f"{name}.md").read_text())
    click.echo(f"wrote {out / (name + '.json')}", err=True)


@experiment.command("cligen")
@click.argument("table", type=click.Choice(["tiers", "tier-captions", "steps", "levers", "arithmetic",
                                           "determinism"]))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Folder for runs and table.")
@click.option("--data", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Terminal dataset (tiers, steps, levers). --quick records a tiny one when absent.")
@click.option("--steps", type=click.IntRange(1), default=1000, show_default=True, help="Training steps per run.")
@click.option("--seeds", default="0,1,2", show_default=True,
              help="steps, levers: comma-separated training seeds; tiers: the first is the training seed.")
@click.option("--eval-clips", type=click.IntRange(1), default=None, help="tiers, tier-captions, levers: score at most this many test clips.")
@click.option("--model", type=click.Path(path_type=Path), default=Path("models/cligen-tiny"), show_default=True,
              help="arithmetic, determinism: the terminal model.")
@click.option("--desktop-model", type=click.Path(path_type=Path), default=Path("models/guiworld-tiny"),
              show_default=True, help="determinism: the desktop model.")
@click.option("--models", multiple=True, help="tier-captions: NAME=MODEL, once per trained seed.")
@click.option("--n", "count", type=click.IntRange(1, 1000), default=20, show_default=True,
              help="arithmetic: held-out problems.")
@click.option("--sample-steps", type=click.IntRange(1, 200), default=None,
              help="arithmetic, determinism: denoising steps (default: the model's).")
@click.option("--preset", default=None, help="[default: cligen-cells for levers, else cligen-tiny]")
@click.option("--quick", is_flag=True, help="Tiny data recorded on the spot, a tiny model, a few steps: checks the "
              "pipeline from a clean clone, measures nothing.")
@click.argument("overrides", nargs=-1)
def experiment_cligen(table: str, out: Path, data: Path | None, steps: int, seeds: str, eval_clips: int | None,
                      model: Path, desktop_model: Path, models: tuple[str, ...], count: int,
                      sample_steps: int | None, preset: str | None, quick: bool, overrides: tuple[str, ...]) -> None:
    """One of the paper's CLIGen findings (caption tiers, step curves over seeds, arithmetic probe,
    determinism), or the CellGen levers table (each design choice off alone, equal budget, seeds)."""
    from neuralcomputer.config import preset_config
    from neuralcomputer.data.dataset import is_dataset
    from neuralcomputer.experiments import cligen as ex

    preset = preset or ("cligen-cells" if table == "levers" else "cligen-tiny")
    extra = list(overrides)
    if quick:
        cells = preset_config(preset)["model"]["kind"] == "cellgen"
        extra = (ex.QUICK_CELL_OVERRIDES if cells else ex.QUICK_OVERRIDES) + extra
        steps = min(steps, ex.QUICK_STEPS)
        count, eval_clips, sample_steps = min(count, 2), min(eval_clips or 2, 2), sample_steps or 2
        seeds = ",".join(seeds.split(",")[:2])
    if table == "determinism":
        data = ex.quick_dataset(out)  # its training check: a tiny model on tiny real data, twice
    if table in ("tiers", "tier-captions", "steps", "levers") and data is None:
        if not quick:
            raise NCError(f"experiment cligen {table}: give --data DATASET (or --quick to record a tiny one)")
        data = ex.quick_dataset(out)
    if data is not None and not is_dataset(data):
        raise NCError(f"--data {data}: not a dataset (no manifest.jsonl)")
    needed = {"arithmetic": [(model, "--model")],
              "determinism": [(model, "--model"), (desktop_model, "--desktop-model")]}.get(table, [])
    for path, name in needed:
        if not path.is_dir():
            raise NCError(f"{name} {path}: no such model folder")
    if table == "tier-captions":
        if not models:
            raise NCError("experiment cligen tier-captions: give --models NAME=MODEL (once per seed)")
        ex.caption_tiers_table(_model_specs(models), data, out, eval_clips=eval_clips)
    elif table == "tiers":
        ex.tiers_table(data, out, steps=steps, overrides=extra, preset=preset, eval_clips=eval_clips, quick=quick,
                       seed=_int_list(seeds, "--seeds")[0])
    elif table == "levers":
        ex.levers_table(data, out, steps=steps, seeds=tuple(_int_list(seeds, "--seeds")), overrides=extra,
                        preset=preset, eval_clips=eval_clips, quick=quick)
    elif table == "steps":
        ex.steps_table(data, out, steps=steps, seeds=tuple(_int_list(seeds, "--seeds")), overrides=extra, preset=preset, quick=quick)
    elif table == "arithmetic":
        ex.arithmetic_table(model, out, n=count, steps=sample_steps, quick=quick)
    else:
        ex.determinism_table(model, desktop_model, data, out, steps=sample_steps, quick=quick)
    click.echo((out / f"{table}.md").read_text())
    click.echo(f"wrote {out / (table + '.json')}", err=True)


@main.command()
@click.option("--model", "model_specs", multiple=True, metavar="NAME=PATH",
              help="A model to offer (run folder, checkpoint or model directory); repeatable. "
                   "Default: the bundled models under models/, as ncomp demo.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind. Anything but loopback needs --token.")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True, help="0: any free port.")
@click.option("--token", default=None, envvar="NCOMP_TOKEN",
              help="Secret every request and websocket must carry (env NCOMP_TOKEN); the printed URL holds it.")
@click.option("--max-sessions", type=click.IntRange(1, 1024), default=4, show_default=True,
              help="Sessions using a model at once; later ones wait in a queue.")
@click.option("--idle-timeout", type=click.FloatRange(1), default=300.0, show_default=True,
              help="Seconds without use (opening a model or a step) before a session is closed.")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Threads running model steps for all sessions (1 suits a CPU or one GPU).")
def serve(model_specs: tuple[str, ...], host: str, port: int, token: str | None, max_sessions: int,
          idle_timeout: float, workers: int) -> None:
    """Use neural computers in the browser: a web page and a websocket (terminal and desktop models).

    Loopback only by default; binding another address requires --token. Prints the URL to open."""
    import ipaddress
    import socket
    from urllib.parse import quote

    import uvicorn

    from neuralcomputer.runtime.server import create_app

    models = _model_specs(model_specs)
    if not models:  # as ncomp demo: the bundled models (one line saying how to serve others if there are none)
        from neuralcomputer.demo import bundled_models

        models = bundled_models()
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback and not token:
        raise NCError(f"--host {host} is not loopback: pass --token SECRET (every request must then carry it)")
    app = create_app(models, token=token, max_sessions=max_sessions, idle_timeout_s=idle_timeout, workers=workers)
    try:  # bind here, so a busy port is one clear line and port 0 prints the port it got
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)  # now: a request to the URL printed below queues instead of being refused
    except OSError as exc:
        raise NCError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{bound}/" + (f"?token={quote(token, safe='')}" if token else "")
    click.echo(f"serving {', '.join(models)} at {url}")
    config = uvicorn.Config(app, log_level="warning", ws_max_size=1 << 20, timeout_graceful_shutdown=5)
    uvicorn.Server(config).run(sockets=[sock])


@main.command()
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True, help="0: any free port.")
@click.option("--record", "record_out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Instead of serving: record real sessions, render them to a dataset and videos in DIR.")
@click.pass_context
def demo(ctx: click.Context, port: int, record_out: Path | None) -> None:
    """Use the bundled neural computers in the browser: zero arguments, prints the URL to open.

    A terminal model (type a command, watch it render the session; tick "hybrid" and a sandboxed shell
    tells it what the screen must show) and a desktop model (click and type on the screen)."""
    from neuralcomputer.demo import bundled_models, run_demo

    if record_out is not None:
        run_demo(record_out)
        return
    specs = tuple(f"{name}={path}" for name, path in bundled_models().items())
    ctx.invoke(serve, model_specs=specs, host="127.0.0.1", port=port, token=None, max_sessions=4,
               idle_timeout=300.0, workers=1)


if __name__ == "__main__":
    main()
