"""``ncomp bench train`` / ``ncomp bench sample`` / ``ncomp bench flops``: speed, memory and FLOPs.

Training speed is measured twice in the same process on the same inputs: our full training step
(caption encoder, Wan I2V conditioning, flow loss, grad clipping, AdamW, EMA) and the bare diffusers
``WanTransformer3DModel`` of the same size fed precomputed text embeddings with a plain MSE and
AdamW; the difference is our overhead. FLOPs are counted with ``torch.utils.flop_counter`` on the
meta device, so the 14B preset is counted without allocating it.
"""

from __future__ import annotations

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


def _time(fn: Callable[[], None], warmup: int, steps: int) -> float:
    for _ in range(warmup):
        fn()
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - start) / steps


def _model(preset: str, overrides: list[str]) -> tuple[CLIGenModel, dict[str, Any]]:
    config = apply_overrides(preset_config(preset), overrides)
    model_cfg = dict(config["model"])
    model_cfg["tokenizer"] = {**model_cfg["tokenizer"], "path": None}  # untrained: speed does not care
    return CLIGenModel(model_cfg), config


def bench_train(preset: str = "cligen-tiny", steps: int = 10, warmup: int = 2, threads: int | None = None,
                overrides: list[str] | None = None) -> Iterator[dict]:
    """Steps/s, samples/s and peak memory: ours vs the bare diffusers transformer."""
    from diffusers import WanTransformer3DModel
    from diffusers.training_utils import EMAModel

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    model, config = _model(preset, overrides or [])
    t = config["train"]
    b = t["batch_size"]
    c, lt, lh, lw = model.latent_shape
    x0 = torch.randn(b, c, lt, lh, lw)
    captions = ["x" * CAPTION_BYTES] * b
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=t["lr"], weight_decay=t["weight_decay"])
    ema = EMAModel(params, decay=t["ema_decay"])
    gen = torch.Generator().manual_seed(0)

    def ours() -> None:
        noise = torch.randn(x0.shape, generator=gen)
        sigma = sample_sigmas(b, config["model"]["flow_shift"], gen)
        with torch.no_grad():
            cond = model.condition(None, x0[:, :, :1])
        text = model.encode_text(captions)
        pred = model(noisy_latents(x0, noise, sigma), sigma * NUM_TRAIN_TIMESTEPS, cond, text)
        flow_loss(pred, x0, noise).backward()
        torch.nn.utils.clip_grad_norm_(params, t["grad_clip"])
        opt.step()
        opt.zero_grad(set_to_none=True)
        ema.step(params)

    bare_model = WanTransformer3DModel(**dict(model.transformer.config))
    bare_opt = torch.optim.AdamW(bare_model.parameters(), lr=t["lr"], weight_decay=t["weight_decay"])
    with torch.no_grad():
        text = model.encode_text(captions)
    inp = torch.randn(b, bare_model.config.in_channels, lt, lh, lw)

    def bare() -> None:
        out = bare_model(inp, torch.full((b,), 500.0), text, return_dict=False)[0]
        (out - x0).square().mean().backward()
        bare_opt.step()
        bare_opt.zero_grad(set_to_none=True)

    # Interleave so that both see the same machine state.
    s_bare = _time(bare, warmup, steps)
    s_ours = _time(ours, warmup, steps)
    s_bare = min(s_bare, _time(bare, 0, steps))
    s_ours = min(s_ours, _time(ours, 0, steps))
    n_params = sum(p.numel() for p in model.transformer.parameters())
    tokens = lt * lh * lw // (torch.tensor(model.transformer.config.patch_size).prod().item())
    common = {"preset": preset, "threads": torch.get_num_threads(), "batch_size": b, "tokens_per_sample": tokens,
              "transformer_params": n_params}
    yield {"figure": "train_bare_diffusers", **common, "s_per_step": s_bare, "steps_per_s": 1 / s_bare,
           "samples_per_s": b / s_bare}
    yield {"figure": "train_ours", **common, "s_per_step": s_ours, "steps_per_s": 1 / s_ours,
           "samples_per_s": b / s_ours, "overhead_vs_bare": s_ours / s_bare - 1,
           "text_encoder_params": sum(p.numel() for p in model.text_encoder.parameters())}
    yield {"figure": "train_peak_rss_mb", "preset": preset, "value": _peak_rss_mb()}


def bench_sample(preset: str = "cligen-tiny", model_dir: str | None = None, clips: int = 2, steps: int | None = None,
                 threads: int | None = None) -> Iterator[dict]:
    """Seconds per sampled clip at the default sampler steps (untrained weights unless ``model_dir``)."""
    import numpy as np

    from neuralcomputer.pipelines.cligen import CLIGenPipeline

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = CLIGenModel.from_pretrained(model_dir) if model_dir else _model(preset, [])[0]
    pipe = CLIGenPipeline(model, steps=steps)
    first = np.zeros((pipe.height, pipe.width, 3), np.uint8)
    caption = "x" * CAPTION_BYTES
    pipe.sample_frames(first[None], [caption], seed=0)  # warm-up
    start = time.perf_counter()
    for i in range(clips):
        pipe.sample_frames(first[None], [caption], seed=i)
    s = (time.perf_counter() - start) / clips
    yield {"figure": "sample_s_per_clip", "preset": model.config.get("preset", preset), "sampler": pipe.sampler,
           "steps": pipe.steps, "guidance_scale": pipe.guidance_scale, "frames_sampled": pipe.num_frames,
           "threads": torch.get_num_threads(), "value": s}
    yield {"figure": "sample_peak_rss_mb", "value": _peak_rss_mb()}


def preset_flops(preset: str) -> dict:
    """FLOPs of one training step (forward + backward, batch of the preset) and of one sampled clip
    (all sampler steps, with guidance) for the transformer, counted on the meta device."""
    from diffusers import WanTransformer3DModel
    from torch.utils.flop_counter import FlopCounterMode

    config = preset_config(preset)
    m = config["model"]
    t = transformer_kwargs(m, m["text"].get("text_dim", 4096))
    text_dim = t["text_dim"]
    if m["tokenizer"]["kind"].startswith("wan-vae"):
        # Wan2.1 VAE: 16 channels, 8x spatial (frames padded to a multiple of 16), 4x temporal
        c, r = 16, 4
        lt, lh, lw = 1 + (m["num_frames"] - 1) // 4, -(-m["height"] // 16) * 2, -(-m["width"] // 16) * 2
    else:
        ch, cw = m["tokenizer"]["cell"]
        c, r = m["tokenizer"]["latent_channels"], 1
        lt, lh, lw = m["num_frames"], m["height"] // ch, m["width"] // cw
    b = config["train"]["batch_size"]
    text_len = 512 if m["text"]["kind"] == "umt5" or m.get("image") else 256
    with torch.device("meta"):
        model = WanTransformer3DModel(in_channels=2 * c + r, out_channels=c, **t)
        x = torch.randn(b, 2 * c + r, lt, lh, lw)
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
    return {"figure": "flops", "preset": preset, "transformer_params": sum(p.numel() for p in model.parameters()),
            "latent": [c, lt, lh, lw], "tokens_per_sample": lt * lh * lw // (t["patch_size"][0] * t["patch_size"][1] * t["patch_size"][2]),
            "batch_size": b, "train_step_flops": train, "sample_steps": m["sample_steps"],
            "sample_clip_flops": fwd * passes * m["sample_steps"],
            "note": f"transformer only, text length {text_len}; tokenizer and text encoder excluded"}


def bench_tokenizers(data: str, cell_ae: list[str], wan_vae: str | None = None, clips: int = 10,
                     frames_per_clip: int = 4, threads: int | None = None) -> Iterator[dict]:
    """Each tokenizer on held-out (test split) frames: reconstruction PSNR, grid-OCR char/line accuracy
    against the frames' true screen text, and encode+decode seconds per frame.

    ``cell_ae``: trained cell-AE tokenizer directories (``RUN/tokenizer/model``); ``wan_vae``: a local
    AutoencoderKLWan directory (the real Wan2.1 VAE when a user has it).
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
                  steps: int | None = None, threads: int | None = None, overrides: list[str] | None = None
                  ) -> Iterator[dict]:
    """GUIWorld rollout speed: generated frames per second and the per-stage split (untrained weights
    unless ``model_dir``; same speed). Actions: the pointer sweeping the screen with a click each second."""
    import numpy as np

    from neuralcomputer.config import apply_overrides
    from neuralcomputer.data.desktop.actions import FrameActions
    from neuralcomputer.models.guiworld import GUIWorldModel
    from neuralcomputer.pipelines.guiworld import GUIWorldRollout

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    if model_dir:
        if overrides:
            raise NCError("bench rollout: key=value overrides apply to a preset, not to --model (a trained model)")
        model = GUIWorldModel.from_pretrained(model_dir)
    else:
        cfg = apply_overrides(preset_config(preset), overrides or [])["model"]
        model = GUIWorldModel({**cfg, "screen": [1024, 768]})
    roll = GUIWorldRollout(model, steps=steps)
    sw, sh = roll.screen
    actions = []
    for f in range(frames + 1):
        x, y = int(sw * f / (frames + 1)), int(sh / 2)
        meta = [{"type": "click", "x": x, "y": y, "button": 1, "count": 1}] if f % 15 == 14 else []
        events = [{"type": "move", "x": x, "y": y}] + ([{"type": "down", "button": 1}, {"type": "up", "button": 1}]
                                                       if meta else [])
        actions.append(FrameActions(f, f / 15, (x, y), events, meta))
    first = np.full((sh, sw, 3), 100, np.uint8)
    roll.rollout(first, actions[:3])  # warm-up
    _, t = roll.rollout(first, actions)
    total = t.context + t.denoise + t.decode
    common = {"model": str(model_dir) if model_dir else preset, "steps": roll.steps, "sampler": roll.sampler,
              "size": f"{model.config['width']}x{model.config['height']}", "context_frames": model.window - 1,
              "threads": torch.get_num_threads()}
    yield {"figure": "rollout_frames_per_s", **common, "frames": t.frames, "value": t.frames / total}
    yield {"figure": "rollout_s_per_frame_split", **common,
           "value": {"context_pass": t.context / t.frames, "denoiser_steps": t.denoise / t.frames,
                     "decoder": t.decode / t.frames}}
    roll.cache = False  # the same rollout with every sampler step running the whole window
    _, u = roll.rollout(first, actions)
    roll.cache = True
    yield {"figure": "rollout_uncached_frames_per_s", **common, "frames": u.frames,
           "value": u.frames / (u.context + u.denoise + u.decode)}
    yield {"figure": "rollout_peak_rss_mb", "value": _peak_rss_mb()}
