"""``ncomp bench ...``: the benchmark commands (their code lives in :mod:`neuralcomputer.bench`)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from neuralcomputer.cli.common import _Group, _model_specs, _size
from neuralcomputer.errors import NCError


@click.group(cls=_Group)
def bench() -> None:
    """Speed and memory benchmarks (one JSON line per figure)."""


@bench.command("render")
@click.option("--cast", type=click.Path(exists=True, path_type=Path), default=None,
              help="Recording to render (default: an 80x24 real cast from ../shared, else a fresh recording).")
@click.option("--naive-frames", type=click.IntRange(1), default=60, show_default=True)
def bench_render(cast: Path | None, naive_frames: int) -> None:
    """Frames/s per core of the glyph-atlas renderer vs drawing each cell with Pillow, and memory."""
    from neuralcomputer.bench.render import bench_render as run

    for figure in run(cast, naive_frames=naive_frames):
        click.echo(json.dumps(figure))


@bench.command("emulators")
@click.argument("folder", required=False, type=click.Path(path_type=Path))
def bench_emulators_cmd(folder: Path | None) -> None:
    """Which VT emulator renders real recordings correctly: pyte as shipped vs ours (default: ../shared's casts)."""
    from neuralcomputer.bench.emulators import bench_emulators

    for figure in bench_emulators(folder):
        click.echo(json.dumps(figure))


@bench.command("collect")
@click.option("--seconds", type=click.FloatRange(1), default=20.0, show_default=True, help="Length of each episode.")
@click.option("--size", default="1024x768", show_default=True, callback=lambda c, p, v: _size(v))
@click.option("--workers", type=click.IntRange(1, 64), default=2, show_default=True,
              help="Parallel desktops in the last figure (1: skip it).")
@click.option("--policy", "policies", multiple=True, help="Policies to measure (default: random-slow, random-fast).")
def bench_collect_cmd(seconds: float, size: tuple[int, int], workers: int, policies: tuple[str, ...]) -> None:
    """Desktop collection: capture frames/s per worker, dropped frames, pointer px/frame and actions/s per policy."""
    from neuralcomputer.bench.collect import bench_collect

    for figure in bench_collect(policies or ("random-slow", "random-fast"), seconds=seconds, size=size,
                                workers=workers):
        click.echo(json.dumps(figure))


@bench.command("ocr")
@click.option("--frames", "n_frames", type=click.IntRange(1), default=20, show_default=True,
              help="Frames read by Tesseract (grid OCR reads more: it is fast).")
def bench_ocr_cmd(n_frames: int) -> None:
    """Frames/s per core of grid OCR vs Tesseract on 80x24 frames at 13 px."""
    from neuralcomputer.bench.ocr import bench_ocr

    for figure in bench_ocr(n_frames=n_frames):
        click.echo(json.dumps(figure))


_DEVICE = click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
_PRECISION = click.option("--precision", type=click.Choice(["no", "bf16"]), default="no", show_default=True,
                          help="bf16: run under bf16 autocast.")


@bench.command("train")
@click.option("--preset", default="cligen-tiny", show_default=True)
@click.option("--steps", type=click.IntRange(1), default=10, show_default=True, help="Timed steps (after the warm-up).")
@click.option("--warmup", type=click.IntRange(0), default=2, show_default=True, help="Untimed steps first.")
@click.option("--threads", type=click.IntRange(0), default=0, show_default=True, help="CPU threads (0: PyTorch's default).")
@_DEVICE
@click.argument("overrides", nargs=-1)
def bench_train_cmd(preset: str, steps: int, warmup: int, threads: int, device: str, overrides: tuple[str, ...]) -> None:
    """Training steps/s, samples/s and peak memory: our full step vs the bare diffusers transformer.

    bf16 and gradient checkpointing follow the config (mixed_precision=bf16, gradient_checkpointing=true).
    The Wan presets, whose VAE and UMT5 are local checkpoints, are measured transformer only.
    """
    from neuralcomputer.bench.train import bench_train

    for figure in bench_train(preset, steps=steps, warmup=warmup, threads=threads or None, overrides=list(overrides),
                              device=device):
        click.echo(json.dumps(figure))


@bench.command("sample")
@click.option("--preset", default="cligen-tiny", show_default=True)
@click.option("--model", "model_dir", type=click.Path(exists=True, path_type=Path), default=None,
              help="A trained model directory (default: the preset with untrained weights; same speed).")
@click.option("--clips", type=click.IntRange(1), default=2, show_default=True)
@click.option("--steps", type=click.IntRange(1), default=None, help="Sampler steps (default: the model's).")
@click.option("--threads", type=click.IntRange(0), default=0, show_default=True)
@_DEVICE
@_PRECISION
@click.argument("overrides", nargs=-1)
def bench_sample_cmd(preset: str, model_dir: Path | None, clips: int, steps: int | None, threads: int, device: str,
                     precision: str, overrides: tuple[str, ...]) -> None:
    """Seconds per sampled clip at the default sampler steps, and peak memory (Wan presets: transformer only)."""
    from neuralcomputer.bench.train import bench_sample
    from neuralcomputer.pipelines.cligen import resolve_model_dir

    path = str(resolve_model_dir(model_dir)) if model_dir else None
    for figure in bench_sample(preset, path, clips=clips, steps=steps, threads=threads or None,
                               overrides=list(overrides), device=device, precision=precision):
        click.echo(json.dumps(figure))


@bench.command("rollout")
@click.option("--preset", default="guiworld-tiny", show_default=True)
@click.option("--model", "model_dir", type=click.Path(exists=True, path_type=Path), default=None,
              help="A trained GUIWorld run or model directory (default: the preset with untrained weights; same speed).")
@click.option("--frames", type=click.IntRange(1), default=30, show_default=True)
@click.option("--steps", type=click.IntRange(1), default=None, help="Denoising steps per frame (default: the model's).")
@click.option("--threads", type=click.IntRange(0), default=0, show_default=True)
@_DEVICE
@_PRECISION
@click.argument("overrides", nargs=-1)
def bench_rollout_cmd(preset: str, model_dir: Path | None, frames: int, steps: int | None, threads: int, device: str,
                      precision: str, overrides: tuple[str, ...]) -> None:
    """GUIWorld rollout: generated frames per second and seconds per frame by stage (denoiser, decoder)."""
    from neuralcomputer.bench.train import bench_rollout
    from neuralcomputer.pipelines.cligen import resolve_model_dir

    path = str(resolve_model_dir(model_dir)) if model_dir else None
    for figure in bench_rollout(preset, path, frames=frames, steps=steps, threads=threads or None,
                                overrides=list(overrides), device=device, precision=precision):
        click.echo(json.dumps(figure))


@bench.command("tokenizer")
@click.option("--data", "dataset", type=click.Path(exists=True, path_type=Path), required=True,
              help="Dataset whose test split is measured.")
@click.option("--cell-ae", "cell_ae", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="Trained cell-AE tokenizer directory (e.g. RUN/tokenizer/model); repeatable.")
@click.option("--wan-vae", type=click.Path(exists=True, path_type=Path), default=None,
              help="A local AutoencoderKLWan directory (the real Wan2.1 VAE).")
@click.option("--tiles", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="A CellGen tile codec (its model directory); repeatable.")
@click.option("--clips", type=click.IntRange(1), default=10, show_default=True)
@click.option("--threads", type=click.IntRange(0), default=0, show_default=True)
def bench_tokenizer_cmd(dataset: Path, cell_ae: tuple[Path, ...], wan_vae: Path | None, tiles: tuple[Path, ...],
                        clips: int, threads: int) -> None:
    """Tokenizers on held-out frames: reconstruction PSNR/SSIM, grid-OCR char/line accuracy, time per frame."""
    from neuralcomputer.bench.train import bench_tokenizers

    for figure in bench_tokenizers(str(dataset), [str(p) for p in cell_ae], str(wan_vae) if wan_vae else None,
                                   clips=clips, threads=threads or None, tiles=[str(p) for p in tiles]):
        click.echo(json.dumps(figure))


@bench.command("flops")
@click.option("--preset", "presets", multiple=True, help="Preset(s) (default: every CLIGen preset).")
@click.option("--model", "model_dirs", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="A model directory or run (its own config); repeatable.")
@click.argument("overrides", nargs=-1)
def bench_flops_cmd(presets: tuple[str, ...], model_dirs: tuple[Path, ...], overrides: tuple[str, ...]) -> None:
    """FLOPs of each preset's transformer (counted, not timed): per training step and per sampled clip
    (CLIGen), per rollout frame (GUIWorld). KEY=VALUE overrides apply to every --preset."""
    from neuralcomputer.bench.train import model_dir_flops, preset_flops
    from neuralcomputer.config import PRESETS
    from neuralcomputer.pipelines.cligen import resolve_model_dir

    if model_dirs and overrides and not presets:
        raise NCError("bench flops: key=value overrides apply to --preset, not to --model (a trained model)")
    for preset in presets or ([] if model_dirs else [p for p in PRESETS if PRESETS[p]["model"]["kind"] == "cligen"]):
        click.echo(json.dumps(preset_flops(preset, list(overrides))))
    for path in model_dirs:
        click.echo(json.dumps(model_dir_flops(str(resolve_model_dir(path)))))


def _sessions(value: str) -> tuple[int, ...]:
    try:
        levels = tuple(int(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(f"{value!r}: expected session counts such as 1,4,8") from None
    if not all(1 <= n <= 64 for n in levels):
        raise click.BadParameter(f"{value!r}: each count must be in 1..64")
    return levels


@bench.command("serve")
@click.option("--model", "model_specs", multiple=True, metavar="NAME=PATH",
              help="A model to serve (run folder, checkpoint or model directory); repeatable. "
                   "Default: the bundled models under models/.")
@click.option("--sessions", default="1,4,8", show_default=True, callback=lambda c, p, v: _sessions(v),
              help="Concurrency levels: sessions stepping at once.")
@click.option("--steps-per-session", type=click.IntRange(1), default=None,
              help="Timed steps per session and level (default: 3 terminal, 10 desktop).")
@click.option("--sampling-steps", type=click.IntRange(1, 200), default=None,
              help="Denoising steps per step (terminal: per clip), as the page's setting (default: the model's).")
@click.option("--threads", type=click.IntRange(0), default=0, show_default=True, help="CPU threads (0: PyTorch's default).")
@click.option("--timeout", type=click.FloatRange(1), default=600.0, show_default=True,
              help="Seconds to wait for any one reply before giving up.")
def bench_serve_cmd(model_specs: tuple[str, ...], sessions: tuple[int, ...], steps_per_session: int | None,
                    sampling_steps: int | None, threads: int, timeout: float) -> None:
    """The web runtime with N sessions at once: step latency p50/p95, frames/s per session and in total,
    memory per session (the serve app on a loopback port, driven by websocket clients)."""
    from neuralcomputer.bench.serve import bench_serve

    models = _model_specs(model_specs)
    if not models:
        from neuralcomputer.demo import bundled_models

        try:
            models = bundled_models()
        except NCError:
            raise NCError("bench serve: no bundled models under models/; pass --model NAME=PATH") from None
    for figure in bench_serve(models, sessions, steps_per_session=steps_per_session, sampling_steps=sampling_steps,
                              threads=threads or None, timeout_s=timeout):
        click.echo(json.dumps(figure))
