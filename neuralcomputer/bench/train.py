"""``ncomp bench train`` / ``ncomp bench sample`` / ``ncomp bench flops``: speed, memory and FLOPs.

Training speed is measured twice in the same process on the same inputs: our full training step
(caption encoder, Wan I2V conditioning, flow loss, grad clipping, AdamW, EMA) and the bare diffusers
``WanTransformer3DModel`` of the same size fed precomputed text embeddings with a plain MSE and
AdamW; the difference is our overhead. FLOPs are counted with ``torch.utils.flop_counter`` on the
meta device, so the 14B preset is counted without allocating it.

Every timed benchmark takes a ``device`` (``cpu`` or ``cuda``; CUDA work is synchronised before the
clock is read) and bf16 autocast (``mixed_precision=bf16`` for training, ``precision`` for sampling and
rollouts). Presets whose tokenizer and caption encoder are pretrained checkpoints (the Wan2.1 VAE and
UMT5, never downloaded) are measured *transformer only*: a randomly initialised
``WanTransformer3DModel`` of the preset's size fed random latents and text embeddings of the preset's
shapes, the same shapes :func:`preset_flops` counts, so their FLOPs utilisation is exact.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch

from neuralcomputer.config import apply_overrides, preset_config
from neuralcomputer.diffusion.flow import NUM_TRAIN_TIMESTEPS, flow_loss, noisy_latents, sample_sigmas
from neuralcomputer.errors import NCError
from neuralcomputer.models.cligen import CLIGenModel, transformer_kwargs

CAPTION_BYTES = 172  # median detailed caption of the clean dataset


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _device(name: str) -> torch.device:
    """The device a benchmark runs on (its peak-memory counter reset); CUDA on a machine without it is
    one clear error, not a traceback from the first tensor moved there."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise NCError(f"--device {name}: expected cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise NCError(f"--device {name}: expected cpu, cuda or cuda:N")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise NCError(f"--device {name}: no CUDA device here (torch {torch.__version__}, CUDA build: "
                          f"{torch.version.cuda or 'none'})")
        torch.cuda.reset_peak_memory_stats(device)
    return device


def _sync(device: torch.device) -> None:
    """Wait for queued CUDA work: kernels run asynchronously, so the clock is read only after them."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """The autocast the training loop uses for ``mixed_precision`` (``no`` or ``bf16``)."""
    if precision == "no":
        return contextlib.nullcontext()
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    raise NCError(f"precision {precision}: the benchmarks measure no or bf16 (fp16 needs a loss scaler)")


def _peak_gpu_figure(name: str, device: torch.device, **keys: Any) -> Iterator[dict]:
    """``{name}`` = ``torch.cuda.max_memory_allocated`` in MB, when the benchmark ran on CUDA."""
    if device.type == "cuda":
        yield {"figure": name, **keys, "device": str(device), "value": torch.cuda.max_memory_allocated(device) / 2**20}


def _time(fn: Callable[[], None], warmup: int, steps: int, device: torch.device | None = None) -> float:
    for _ in range(warmup):
        fn()
    if device is not None:
        _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    if device is not None:
        _sync(device)
    return (time.perf_counter() - start) / steps


def needs_local_weights(model_cfg: dict[str, Any]) -> bool:
    """Whether a model config's tokenizer or caption encoder is a pretrained checkpoint that is not here
    (the Wan presets without ``model.pretrained``): such presets are benchmarked transformer only."""
    if model_cfg.get("pretrained"):
        return False
    tok, text = model_cfg["tokenizer"], model_cfg.get("text") or {}
    return (tok["kind"] == "wan-vae" and not tok.get("path")) or (text.get("kind") == "umt5" and not text.get("path"))


def transformer_shapes(config: dict[str, Any]) -> dict[str, Any]:
    """What a CLIGen config's transformer sees per training batch: its ``WanTransformer3DModel``
    arguments, the latent shape ``(C, T', h, w)``, the batch, and the text (and image context) shapes.

    Caption length: UMT5's 512 tokens for the Wan presets, 256 bytes for the byte encoder.
    """
    m = config["model"]
    t = transformer_kwargs(m, m["text"].get("text_dim", 4096))
    if m["tokenizer"]["kind"].startswith("wan-vae"):
        # Wan2.1 VAE: 16 channels, 8x spatial (frames padded to a multiple of 16), 4x temporal
        c, r = 16, 4
        lt, lh, lw = 1 + (m["num_frames"] - 1) // 4, -(-m["height"] // 16) * 2, -(-m["width"] // 16) * 2
    else:
        ch, cw = m["tokenizer"]["cell"]
        c, r = m["tokenizer"]["latent_channels"], 1
        lt, lh, lw = m["num_frames"], m["height"] // ch, m["width"] // cw
    p = t["patch_size"]
    return {"kwargs": t, "in_channels": 2 * c + r, "out_channels": c, "latent": (c, lt, lh, lw),
            "tokens_per_sample": lt * lh * lw // (p[0] * p[1] * p[2]), "batch_size": config["train"]["batch_size"],
            "text_len": 512 if m["text"]["kind"] == "umt5" or m.get("image") else 256, "text_dim": t["text_dim"],
            "image_dim": t.get("image_dim")}


def _model(preset: str, overrides: list[str]) -> tuple[CLIGenModel, dict[str, Any]]:
    config = apply_overrides(preset_config(preset), overrides)
    model_cfg = dict(config["model"])
    model_cfg["tokenizer"] = {**model_cfg["tokenizer"], "path": None}  # untrained: speed does not care
    return CLIGenModel(model_cfg), config


def bench_train(preset: str = "cligen-tiny", steps: int = 10, warmup: int = 2, threads: int | None = None,
                overrides: list[str] | None = None, device: str = "cpu") -> Iterator[dict]:
    """Steps/s, samples/s and peak memory: ours vs the bare diffusers transformer.

    The config's ``mixed_precision`` (bf16 autocast) and ``gradient_checkpointing`` apply to both. A
    preset needing pretrained components that are not here is measured transformer only
    (:func:`needs_local_weights`): the bare step alone, on inputs of the preset's shapes.
    """
    from diffusers import WanTransformer3DModel
    from diffusers.training_utils import EMAModel

    if threads:
        torch.set_num_threads(threads)
    dev = _device(device)
    torch.manual_seed(0)
    config = apply_overrides(preset_config(preset), overrides or [])
    t = config["train"]
    if needs_local_weights(config["model"]):
        yield from _bench_train_transformer_only(config, steps, warmup, dev)
        return
    model, config = _model(preset, overrides or [])
    model.to(dev)
    b = t["batch_size"]
    c, lt, lh, lw = model.latent_shape
    x0 = torch.randn(b, c, lt, lh, lw).to(dev)
    captions = ["x" * CAPTION_BYTES] * b
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=t["lr"], weight_decay=t["weight_decay"])
    ema = EMAModel(params, decay=t["ema_decay"])
    gen = torch.Generator().manual_seed(0)
    if t["gradient_checkpointing"]:
        model.transformer.enable_gradient_checkpointing()

    def ours() -> None:
        # noise drawn on the CPU and moved, as the training loop's batches are
        noise = torch.randn(x0.shape, generator=gen).to(dev)
        sigma = sample_sigmas(b, config["model"]["flow_shift"], gen).to(dev)
        with torch.no_grad():
            cond = model.condition(None, x0[:, :, :1])
        with _autocast(dev, t["mixed_precision"]):
            text = model.encode_text(captions)
            pred = model(noisy_latents(x0, noise, sigma), sigma * NUM_TRAIN_TIMESTEPS, cond, text)
        flow_loss(pred.float(), x0, noise).backward()
        torch.nn.utils.clip_grad_norm_(params, t["grad_clip"])
        opt.step()
        opt.zero_grad(set_to_none=True)
        ema.step(params)

    bare_model = WanTransformer3DModel(**dict(model.transformer.config)).to(dev)
    if t["gradient_checkpointing"]:
        bare_model.enable_gradient_checkpointing()
    bare_opt = torch.optim.AdamW(bare_model.parameters(), lr=t["lr"], weight_decay=t["weight_decay"])
    with torch.no_grad():
        text = model.encode_text(captions)
    inp = torch.randn(b, bare_model.config.in_channels, lt, lh, lw).to(dev)
    timestep = torch.full((b,), 500.0, device=dev)

    def bare() -> None:
        with _autocast(dev, t["mixed_precision"]):
            out = bare_model(inp, timestep, text, return_dict=False)[0]
        (out.float() - x0).square().mean().backward()
        bare_opt.step()
        bare_opt.zero_grad(set_to_none=True)

    # Interleave so that both see the same machine state.
    s_bare = _time(bare, warmup, steps, dev)
    s_ours = _time(ours, warmup, steps, dev)
    s_bare = min(s_bare, _time(bare, 0, steps, dev))
    s_ours = min(s_ours, _time(ours, 0, steps, dev))
    n_params = sum(p.numel() for p in model.transformer.parameters())
    tokens = lt * lh * lw // (torch.tensor(model.transformer.config.patch_size).prod().item())
    common = {"preset": preset, "threads": torch.get_num_threads(), "batch_size": b, "tokens_per_sample": tokens,
              "transformer_params": n_params, "device": str(dev), "mixed_precision": t["mixed_precision"],
              "gradient_checkpointing": t["gradient_checkpointing"]}
    yield {"figure": "train_bare_diffusers", **common, "s_per_step": s_bare, "steps_per_s": 1 / s_bare,
           "samples_per_s": b / s_bare}
    yield {"figure": "train_ours", **common, "s_per_step": s_ours, "steps_per_s": 1 / s_ours,
           "samples_per_s": b / s_ours, "overhead_vs_bare": s_ours / s_bare - 1,
           "text_encoder_params": sum(p.numel() for p in model.text_encoder.parameters())}
    yield {"figure": "train_peak_rss_mb", "preset": preset, "value": _peak_rss_mb()}
    # both models and both optimizers are resident: the peak is that of the pair
    yield from _peak_gpu_figure("train_peak_gpu_mem_mb", dev, preset=preset, includes="ours and the bare comparison")


def _bench_train_transformer_only(config: dict[str, Any], steps: int, warmup: int, dev: torch.device
                                  ) -> Iterator[dict]:
    """The bare training step of a randomly initialised transformer of the config's size (built on the
    device itself: a 1.4B model initialised on a CPU would take longer than the measurement)."""
    from diffusers import WanTransformer3DModel

    shapes = transformer_shapes(config)
    t = config["train"]
    b = shapes["batch_size"]
    c, lt, lh, lw = shapes["latent"]
    with torch.device(dev):
        model = WanTransformer3DModel(in_channels=shapes["in_channels"], out_channels=c, **shapes["kwargs"])
        x = torch.randn(b, shapes["in_channels"], lt, lh, lw)
        target = torch.randn(b, c, lt, lh, lw)
        text = torch.randn(b, shapes["text_len"], shapes["text_dim"])
        image = torch.randn(b, 257, shapes["image_dim"]) if shapes["image_dim"] else None
        timestep = torch.full((b,), 500.0)
    if t["gradient_checkpointing"]:
        model.enable_gradient_checkpointing()
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=t["lr"], weight_decay=t["weight_decay"], betas=tuple(t["betas"]))
    losses: list[torch.Tensor] = []

    def step() -> None:
        with _autocast(dev, t["mixed_precision"]):
            out = model(x, timestep, text, encoder_hidden_states_image=image, return_dict=False)[0]
        loss = (out.float() - target).square().mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), t["grad_clip"])
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.detach())  # read after the clock stops: a float() here would synchronise

    s_step = min(_time(step, warmup, steps, dev), _time(step, 0, steps, dev))
    yield {"figure": "train_bare_diffusers", "preset": config["preset"], "transformer_only": True,
           "threads": torch.get_num_threads(), "batch_size": b, "tokens_per_sample": shapes["tokens_per_sample"],
           "text_len": shapes["text_len"], "transformer_params": sum(p.numel() for p in model.parameters()),
           "device": str(dev), "mixed_precision": t["mixed_precision"],
           "gradient_checkpointing": t["gradient_checkpointing"], "s_per_step": s_step, "steps_per_s": 1 / s_step,
           "samples_per_s": b / s_step, "last_loss": float(losses[-1]),
           "note": "randomly initialised transformer, random latents and text embeddings of the preset's shapes; "
                   "pretrained tokenizer and caption encoder not here, so not run"}
    yield {"figure": "train_peak_rss_mb", "preset": config["preset"], "value": _peak_rss_mb()}
    yield from _peak_gpu_figure("train_peak_gpu_mem_mb", dev, preset=config["preset"], includes="transformer only")


def bench_sample(preset: str = "cligen-tiny", model_dir: str | None = None, clips: int = 2, steps: int | None = None,
                 threads: int | None = None, overrides: list[str] | None = None, device: str = "cpu",
                 precision: str = "no") -> Iterator[dict]:
    """Seconds per sampled clip at the default sampler steps (untrained weights unless ``model_dir``).

    ``precision="bf16"``: the whole clip under bf16 autocast. A preset needing pretrained components
    that are not here is measured transformer only (the sampler and guidance over a random transformer
    of its size; no caption encoding, no VAE decoding).
    """
    import numpy as np

    from neuralcomputer.pipelines.cligen import CLIGenPipeline

    if threads:
        torch.set_num_threads(threads)
    dev = _device(device)
    torch.manual_seed(0)
    if model_dir and overrides:
        raise NCError("bench sample: key=value overrides apply to a preset, not to --model (a trained model)")
    if not model_dir:
        config = apply_overrides(preset_config(preset), overrides or [])
        if needs_local_weights(config["model"]):
            yield from _bench_sample_transformer_only(config, clips, steps, dev, precision)
            return
    model = CLIGenModel.from_pretrained(model_dir) if model_dir else _model(preset, overrides or [])[0]
    pipe = CLIGenPipeline(model, steps=steps, device=dev)
    first = np.zeros((pipe.height, pipe.width, 3), np.uint8)
    caption = "x" * CAPTION_BYTES
    with _autocast(dev, precision):
        pipe.sample_frames(first[None], [caption], seed=0)  # warm-up
        start = time.perf_counter()
        for i in range(clips):
            pipe.sample_frames(first[None], [caption], seed=i)  # ends in a copy to the host: synchronised
    s = (time.perf_counter() - start) / clips
    yield {"figure": "sample_s_per_clip", "preset": model.config.get("preset", preset), "sampler": pipe.sampler,
           "steps": pipe.steps, "guidance_scale": pipe.guidance_scale, "frames_sampled": pipe.num_frames,
           "threads": torch.get_num_threads(), "device": str(dev), "precision": precision, "value": s}
    yield {"figure": "sample_peak_rss_mb", "value": _peak_rss_mb()}
    yield from _peak_gpu_figure("sample_peak_gpu_mem_mb", dev)


def _bench_sample_transformer_only(config: dict[str, Any], clips: int, steps: int | None, dev: torch.device,
                                   precision: str) -> Iterator[dict]:
    """Seconds per clip of the sampler over a random transformer of the config's size: what
    :meth:`CLIGenPipeline.sample_frames` runs between encoding the caption and decoding the latents."""
    from diffusers import WanTransformer3DModel

    from neuralcomputer.diffusion.sampling import guided, sample

    m = config["model"]
    shapes = transformer_shapes(config)
    c, lt, lh, lw = shapes["latent"]
    with torch.device(dev):
        model = WanTransformer3DModel(in_channels=shapes["in_channels"], out_channels=c, **shapes["kwargs"]).eval()
        cond = torch.randn(1, shapes["in_channels"] - c, lt, lh, lw)  # mask ++ first-frame latents
        text = torch.randn(2, shapes["text_len"], shapes["text_dim"])  # the caption, then the empty one
        image = torch.randn(2, 257, shapes["image_dim"]) if shapes["image_dim"] else None
    n_steps = steps or m["sample_steps"]

    def denoise(x: torch.Tensor, t: torch.Tensor, both: bool) -> torch.Tensor:
        n = len(x)
        inputs = torch.cat([x, cond.expand(n, -1, -1, -1, -1).to(x.dtype)], dim=1)
        with _autocast(dev, precision):
            out = model(inputs, t, text[:n], encoder_hidden_states_image=None if image is None else image[:n],
                        return_dict=False)[0]
        return out.float()

    def clip(seed: int) -> None:
        sample(guided(denoise, m["guidance_scale"]), (1, c, lt, lh, lw), sampler=m["sampler"], steps=n_steps,
               shift=m["flow_shift"], generator=torch.Generator().manual_seed(seed), device=dev)

    with torch.no_grad():
        clip(0)  # warm-up
        s = _time(lambda: clip(1), 0, clips, dev)
    yield {"figure": "sample_s_per_clip", "preset": config["preset"], "transformer_only": True, "sampler": m["sampler"],
           "steps": n_steps, "guidance_scale": m["guidance_scale"], "latent": [c, lt, lh, lw],
           "transformer_params": sum(p.numel() for p in model.parameters()), "threads": torch.get_num_threads(),
           "device": str(dev), "precision": precision, "value": s,
           "note": "random transformer of the preset's size; caption encoding and VAE decoding not run"}
    yield {"figure": "sample_peak_rss_mb", "value": _peak_rss_mb()}
    yield from _peak_gpu_figure("sample_peak_gpu_mem_mb", dev)


def preset_flops(preset: str, overrides: list[str] | None = None) -> dict:
    """FLOPs of a preset (with ``key=value`` overrides): for CLIGen, one training step (forward +
    backward, the preset's batch) and one sampled clip (all sampler steps, with guidance); for GUIWorld,
    one rollout frame. Transformer only, counted on the meta device."""
    config = apply_overrides(preset_config(preset), overrides or [])
    if "transformer" not in config["model"]:
        raise NCError(f"preset {preset}: FLOPs are counted for Wan transformers; this preset has none "
                      "(CellGen: see `ncomp bench serve` for its speed)")
    return config_flops(config)


def model_dir_flops(path: str) -> dict:
    """:func:`config_flops` of a model directory's config (training figures at batch size 1)."""
    from neuralcomputer.config import TRAIN_DEFAULTS
    from neuralcomputer.models.cligen import read_model_config

    model = read_model_config(path)["model"]
    return {**config_flops({"preset": str(path), "model": model, "train": {**TRAIN_DEFAULTS, "batch_size": 1}}),
            "model": str(path)}


def config_flops(config: dict[str, Any]) -> dict:
    """FLOPs of a run config's transformer (see :func:`preset_flops`)."""
    from diffusers import WanTransformer3DModel
    from torch.utils.flop_counter import FlopCounterMode

    m = config["model"]
    if m["kind"] == "guiworld":
        return _guiworld_flops(config)
    shapes = transformer_shapes(config)
    t = shapes["kwargs"]
    b, text_len, text_dim = shapes["batch_size"], shapes["text_len"], shapes["text_dim"]
    with torch.device("meta"):
        model = WanTransformer3DModel(in_channels=shapes["in_channels"], out_channels=shapes["out_channels"], **t)
        x = torch.randn(b, shapes["in_channels"], *shapes["latent"][1:])
        text = torch.randn(b, text_len, text_dim)
        image = torch.randn(b, 257, t["image_dim"]) if m.get("image") else None
        counter = FlopCounterMode(display=False)
        with counter:
            model(x, torch.full((b,), 500.0), text, encoder_hidden_states_image=image, return_dict=False)[0].sum().backward()
        train = counter.get_total_flops()
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            model(x[:1], torch.full((1,), 500.0), text[:1], encoder_hidden_states_image=None if image is None else image[:1])
        fwd = counter.get_total_flops()
    passes = 2 if m["guidance_scale"] != 1.0 else 1
    return {"figure": "flops", "preset": config["preset"], "transformer_params": sum(p.numel() for p in model.parameters()),
            "latent": list(shapes["latent"]), "tokens_per_sample": shapes["tokens_per_sample"],
            "batch_size": b, "train_step_flops": train, "sample_steps": m["sample_steps"],
            "sample_clip_flops": fwd * passes * m["sample_steps"],
            "note": f"transformer only, text length {text_len}; tokenizer and text encoder excluded"}


def _sweep_actions(frames: int, screen: tuple[int, int]) -> list:
    """The benchmark's action stream: the pointer sweeping the screen, a click each second."""
    from neuralcomputer.data.desktop.actions import FrameActions

    sw, sh = screen
    actions = []
    for f in range(frames):
        x, y = int(sw * f / frames), int(sh / 2)
        meta = [{"type": "click", "x": x, "y": y, "button": 1, "count": 1}] if f % 15 == 14 else []
        events = [{"type": "move", "x": x, "y": y}] + ([{"type": "down", "button": 1}, {"type": "up", "button": 1}]
                                                       if meta else [])
        actions.append(FrameActions(f, f / 15, (x, y), events, meta))
    return actions


def _guiworld_flops(config: dict[str, Any]) -> dict:
    """FLOPs of one GUIWorld rollout frame as :class:`GUIWorldRollout` runs it (cached context): the
    action encoder, one context pass and ``sample_steps`` target passes, counted on the meta device.
    The tokenizer (cursor reference and decoding) is excluded, as for CLIGen."""
    from torch.utils.flop_counter import FlopCounterMode

    from neuralcomputer.models.actions import features_to_tensors, featurize
    from neuralcomputer.models.guiworld import GUIWorldModel

    m = config["model"]
    with torch.device("meta"):
        model = GUIWorldModel({**m, "tokenizer": {**m["tokenizer"], "path": None}})
    # A parameter handed to a module as an argument (the learned null caption) would make the FLOP
    # counter's module tracker hook a gradient that no_grad never builds: nothing is trained here.
    model.requires_grad_(False)
    k, c, (lh, lw) = model.window, model.tokenizer.latent_channels, model.latent_hw
    screen = tuple(m.get("screen") or (m["width"], m["height"]))
    actions = _sweep_actions(16, screen)[-k:]  # a window with a click in it
    feats = features_to_tensors(featurize([actions], *screen, m["actions"].get("max_meta", 4)), "meta")
    latent = torch.zeros(1, c, 1, lh, lw, device="meta")
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        tokens = model.encode_actions(feats)
        cache = model.context_pass(latent.expand(-1, -1, k - 1, -1, -1), torch.zeros(1, device="meta"), tokens)
        for _ in range(m["sample_steps"]):
            model.target_pass(latent, torch.full((1,), 500.0, device="meta"), tokens, cache,
                              latent if m["cursor_reference"] else None)
    return {"figure": "flops", "preset": config["preset"],
            "transformer_params": sum(p.numel() for p in model.transformer.parameters()),
            "size": f"{m['width']}x{m['height']}", "tokens_per_frame": model.frame_tokens, "window": k,
            "sample_steps": m["sample_steps"], "rollout_frame_flops": counter.get_total_flops(),
            "note": "one rollout frame with the cached context: action encoder, context pass, sampler steps over "
                    "the target's tokens; tokenizer excluded"}


def bench_tokenizers(data: str, cell_ae: list[str], wan_vae: str | None = None, clips: int = 10,
                     frames_per_clip: int = 4, threads: int | None = None, tiles: list[str] = ()) -> Iterator[dict]:
    """Each tokenizer on held-out (test split) frames: reconstruction PSNR, grid-OCR char/line accuracy
    against the frames' true screen text, and encode+decode seconds per frame.

    ``cell_ae``: trained cell-AE tokenizer directories (``RUN/tokenizer/model``); ``wan_vae``: a local
    AutoencoderKLWan directory (the real Wan2.1 VAE when a user has it); ``tiles``: CellGen tile codecs
    (a model directory, or a dataset's ``.cells-cache/codec-*``).
    """
    from pathlib import Path

    import numpy as np

    from neuralcomputer.data.dataset import load_manifest, read_clip_payload
    from neuralcomputer.data.torch_dataset import frames_to_tensor, to_uint8_frames
    from neuralcomputer.eval.grid_ocr import GridOCR
    from neuralcomputer.eval.image_metrics import psnr, ssim
    from neuralcomputer.eval.ocr import frame_text_scores
    from neuralcomputer.models.cligen import build_tokenizer, read_model_config
    from neuralcomputer.models.tokenizers import CellPixelTokenizer, WanVAETokenizer

    if threads:
        torch.set_num_threads(threads)
    root = Path(data)
    records = [r for r in load_manifest(root) if r["split"] == "test"][:clips]
    if not records:
        raise NCError(f"{root}: no test clips to measure tokenizers on")
    frames, texts = [], []
    for r in records:
        payload = read_clip_payload(root / r["path"])
        pick = np.linspace(0, len(payload["frames"]) - 1, frames_per_clip).astype(int)
        frames.append(payload["frames"][pick])
        texts += [str(t) for t in payload["text"][pick]]
    frames = np.concatenate(frames)
    tokenizers: list[tuple[str, torch.nn.Module]] = [("cell-pixel", CellPixelTokenizer((17, 8)))]
    for path in cell_ae:
        cfg = read_model_config(path)["model"]["tokenizer"]
        tokenizers.append((f"cell-ae:{path}", build_tokenizer({**cfg, "path": path}).eval()))
    if wan_vae:
        tokenizers.append((f"wan-vae:{wan_vae}", WanVAETokenizer.from_pretrained(wan_vae)))
    ocr = GridOCR()
    for path in tiles:
        from neuralcomputer.models.tile_codec import TileCodec

        codec = TileCodec.load(path)
        start = time.perf_counter()
        pred = np.stack([codec.decode(codec.encode(f)) for f in frames])
        seconds = (time.perf_counter() - start) / len(frames)
        chars, lines = frame_text_scores(texts, [ocr.read(f) for f in pred])
        yield {"figure": "tokenizer", "tokenizer": f"tiles:{path}", "frames": len(frames), "tiles": len(codec),
               "psnr": min(psnr(pred, frames), 99.0), "ssim": ssim(pred, frames),
               "grid_char_acc": float(np.mean(chars)), "grid_line_acc": float(np.mean(lines)),
               "exact_frames": float(np.mean([(p == f).all() for p, f in zip(pred, frames, strict=True)])),
               "s_per_frame_encode_decode": seconds, "latent_per_frame": list(codec.encode(frames[0]).shape)}
    for name, tok in tokenizers:
        x = frames_to_tensor(frames)
        start = time.perf_counter()
        with torch.no_grad():
            if isinstance(tok, WanVAETokenizer):  # codes video: 1 + 4k frames; here each frame alone
                y = torch.cat([tok.decode(tok.encode(f[None, None]), size=f.shape[-2:])[0] for f in x])
            else:
                y = tok.decode(tok.encode(x[:, None].transpose(0, 1)))[0]
        seconds = (time.perf_counter() - start) / len(x)
        pred = to_uint8_frames(y)
        chars, lines = frame_text_scores(texts, [ocr.read(f) for f in pred])
        z_shape = tuple(tok.encode(x[:1, None]).shape[1:]) if not isinstance(tok, WanVAETokenizer) else None
        yield {"figure": "tokenizer", "tokenizer": name, "frames": len(x), "psnr": min(psnr(pred, frames), 99.0),
               "ssim": ssim(pred, frames), "grid_char_acc": float(np.mean(chars)),
               "grid_line_acc": float(np.mean(lines)), "s_per_frame_encode_decode": seconds,
               "latent_per_frame": z_shape}


def bench_rollout(preset: str = "guiworld-tiny", model_dir: str | None = None, frames: int = 30,
                  steps: int | None = None, threads: int | None = None, overrides: list[str] | None = None,
                  device: str = "cpu", precision: str = "no") -> Iterator[dict]:
    """GUIWorld rollout speed: generated frames per second and the per-stage split (untrained weights
    unless ``model_dir``; same speed). Actions: the pointer sweeping the screen with a click each second.

    Each frame ends in a copy to the host, so frames/s is synchronised on CUDA; the per-stage split is
    not (its stages' kernels may still run when the next stage's clock starts).
    """
    import numpy as np

    from neuralcomputer.config import apply_overrides
    from neuralcomputer.models.guiworld import GUIWorldModel
    from neuralcomputer.pipelines.guiworld import GUIWorldRollout

    if threads:
        torch.set_num_threads(threads)
    dev = _device(device)
    torch.manual_seed(0)
    if model_dir:
        if overrides:
            raise NCError("bench rollout: key=value overrides apply to a preset, not to --model (a trained model)")
        model = GUIWorldModel.from_pretrained(model_dir)
    else:
        cfg = apply_overrides(preset_config(preset), overrides or [])["model"]
        model = GUIWorldModel({**cfg, "screen": [1024, 768]})
    roll = GUIWorldRollout(model, steps=steps, device=dev)
    sw, sh = roll.screen
    actions = _sweep_actions(frames + 1, (sw, sh))
    first = np.full((sh, sw, 3), 100, np.uint8)
    with _autocast(dev, precision):
        roll.rollout(first, actions[:3])  # warm-up
        _, t = roll.rollout(first, actions)
    total = t.context + t.denoise + t.decode
    common = {"model": str(model_dir) if model_dir else preset, "steps": roll.steps, "sampler": roll.sampler,
              "size": f"{model.config['width']}x{model.config['height']}", "context_frames": model.window - 1,
              "threads": torch.get_num_threads(), "device": str(dev), "precision": precision}
    yield {"figure": "rollout_frames_per_s", **common, "frames": t.frames, "value": t.frames / total}
    yield {"figure": "rollout_s_per_frame_split", **common,
           "value": {"context_pass": t.context / t.frames, "denoiser_steps": t.denoise / t.frames,
                     "decoder": t.decode / t.frames}}
    roll.cache = False  # the same rollout with every sampler step running the whole window
    with _autocast(dev, precision):
        _, u = roll.rollout(first, actions)
    roll.cache = True
    yield {"figure": "rollout_uncached_frames_per_s", **common, "frames": u.frames,
           "value": u.frames / (u.context + u.denoise + u.decode)}
    yield {"figure": "rollout_peak_rss_mb", "value": _peak_rss_mb()}
    yield from _peak_gpu_figure("rollout_peak_gpu_mem_mb", dev)
