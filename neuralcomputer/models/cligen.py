"""The CLIGen model: Wan2.1 image-to-video as in the paper, around diffusers' ``WanTransformer3DModel``.

Conditioning follows Wan's I2V channel layout: the transformer input is
``noise latents (C) ++ mask (r) ++ first-frame latents (C)`` on channels, where the first-frame
latents encode ``[first frame, grey, grey, ...]`` and the mask marks the known frame (``r`` = the
tokenizer's temporal ratio: 4 for the Wan VAE, 1 for cell tokenizers). The caption goes through the
text encoder into every block's cross-attention; presets with an image context (14B) also prepend
image tokens (CLIP when a local checkpoint is given, else a learned patch embedder).

A model directory (``save_pretrained``) is ``config.json`` plus one safetensors file per component;
``from_pretrained`` reads it with no network access.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from neuralcomputer.errors import NCError
from neuralcomputer.models.text import ByteTextEncoder, UMT5TextEncoder
from neuralcomputer.models.tokenizers import CellAETokenizer, CellPixelTokenizer, WanVAETokenizer

WAN_TEXT_LEN = 512  # diffusers' Wan attention assumes 512 text tokens when an image context is used


def build_tokenizer(cfg: dict[str, Any]) -> nn.Module:
    """A tokenizer from its config (``kind``: cell-ae, cell-pixel, wan-vae, wan-vae-tiny)."""
    kind = cfg["kind"]
    if kind == "cell-ae":
        tokenizer = CellAETokenizer(tuple(cfg["cell"]), cfg["latent_channels"], cfg["hidden"])
        if cfg.get("path"):
            load_tokenizer_weights(tokenizer, cfg["path"])
        return tokenizer
    if kind == "cell-pixel":
        return CellPixelTokenizer(tuple(cfg["cell"]))
    if kind == "wan-vae":
        if not cfg.get("path"):
            raise NCError("the wan-vae tokenizer needs a local Wan2.1 VAE: set tokenizer.path=DIR "
                          "(e.g. the vae/ folder of a Wan2.1 checkout), or model.pretrained=DIR")
        return WanVAETokenizer.from_pretrained(cfg["path"])
    if kind == "wan-vae-tiny":
        return WanVAETokenizer.tiny_random(cfg.get("seed", 0))
    raise NCError(f"unknown tokenizer kind {kind!r} (expected cell-ae, cell-pixel, wan-vae or wan-vae-tiny)")


def transformer_kwargs(cfg: dict[str, Any], text_dim: int) -> dict[str, Any]:
    """``WanTransformer3DModel`` arguments of a model config, less the channel counts (which depend on
    the tokenizer): ``patch_size`` as a tuple, ``text_dim`` (the caption encoder's unless the config
    sets it) and ``image_dim`` when the preset has an image context."""
    t = dict(cfg["transformer"])
    t["patch_size"] = tuple(t["patch_size"])
    t.setdefault("text_dim", text_dim)
    if cfg.get("image"):
        t["image_dim"] = cfg["image"]["image_dim"]
    return t


def load_tokenizer_weights(tokenizer: nn.Module, path: str | Path) -> None:
    """Load ``tokenizer.safetensors`` of a tokenizer model directory (``ncomp train --preset cell-ae``)."""
    file = Path(path) / "tokenizer.safetensors"
    if not file.is_file():
        raise NCError(f"{path}: no trained tokenizer here (expected tokenizer.safetensors; train one with "
                      "`ncomp train --preset cell-ae`)")
    try:
        state = load_file(str(file))
    except Exception as e:  # safetensors raises several types on a damaged file
        raise NCError(f"{file}: unreadable weights ({e})") from None
    try:
        tokenizer.load_state_dict(state)
    except RuntimeError as e:
        raise NCError(f"{file}: weights do not fit the tokenizer config ({str(e).splitlines()[0]})") from None


def save_tokenizer(tokenizer: nn.Module, path: str | Path, config: dict[str, Any]) -> None:
    """A tokenizer model directory: ``config.json`` + ``tokenizer.safetensors``."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous().cpu() for k, v in tokenizer.state_dict().items()},
              str(path / "tokenizer.safetensors"))
    (path / "config.json").write_text(json.dumps({"kind": "tokenizer", "model": config}, indent=2))


def build_text_encoder(cfg: dict[str, Any]) -> nn.Module:
    if cfg["kind"] == "bytes":
        return ByteTextEncoder(cfg["text_dim"], cfg["layers"], cfg["heads"], cfg["max_len"])
    if cfg["kind"] == "umt5":
        if not cfg.get("path"):
            raise NCError("the umt5 text encoder needs a local Wan2.1 checkout: set text.path=DIR "
                          "(with text_encoder/ and tokenizer/), or model.pretrained=DIR")
        return UMT5TextEncoder(cfg["path"], cfg.get("max_len", WAN_TEXT_LEN))
    raise NCError(f"unknown text encoder kind {cfg['kind']!r} (expected bytes or umt5)")


class PatchImageEncoder(nn.Module):
    """A learned stand-in for Wan's CLIP image context: 257 tokens from a 224x224 view of the first frame.

    Used where an image context is configured but no local CLIP checkpoint is given (tests, training
    from scratch). ``(B, 3, H, W)`` in [0, 1] -> ``(B, 257, image_dim)``.
    """

    def __init__(self, image_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, image_dim, kernel_size=14, stride=14)
        self.cls = nn.Parameter(torch.zeros(1, 1, image_dim))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(image * 2 - 1, size=(224, 224), mode="bilinear", align_corners=False)
        x = self.proj(x).flatten(2).transpose(1, 2)  # (B, 256, D)
        return torch.cat([self.cls.expand(len(x), -1, -1), x], dim=1)


class CLIPImageEncoder(nn.Module):
    """Wan's CLIP ViT-H image context from a local checkout (``image_encoder/``, ``image_processor/``)."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        try:
            from transformers import CLIPImageProcessor, CLIPVisionModel
        except ImportError as e:
            raise NCError("the CLIP image context needs the `transformers` package") from e
        path = Path(path)
        self.processor = CLIPImageProcessor.from_pretrained(path / "image_processor", local_files_only=True)
        self.model = CLIPVisionModel.from_pretrained(path / "image_encoder", local_files_only=True).eval()
        self.model.requires_grad_(False)

    @torch.no_grad()
    def forward(self, image: torch.Tensor) -> torch.Tensor:
        pixels = self.processor(images=list(image), do_rescale=False, return_tensors="pt").pixel_values
        return self.model(pixels.to(image.device), output_hidden_states=True).hidden_states[-2]


def _with_pretrained_paths(cfg: dict[str, Any]) -> dict[str, Any]:
    """``pretrained=DIR`` (a diffusers Wan2.1 checkout) fills in each component's local path."""
    cfg = copy.deepcopy(cfg)
    root = cfg.get("pretrained")
    if root:
        root = Path(root)
        if not root.is_dir():
            raise NCError(f"model.pretrained={root}: no such directory")
        if cfg["tokenizer"]["kind"] == "wan-vae" and not cfg["tokenizer"].get("path"):
            cfg["tokenizer"]["path"] = str(root / "vae")
        if cfg["text"]["kind"] == "umt5" and not cfg["text"].get("path"):
            cfg["text"]["path"] = str(root)
        if cfg.get("image") and cfg["image"]["kind"] == "clip" and not cfg["image"].get("path"):
            cfg["image"]["path"] = str(root)
    return cfg


class CLIGenModel(nn.Module):
    """Tokenizer + caption encoder (+ image context) + Wan DiT, with Wan's I2V conditioning.

    Args:
        config: the ``model`` part of a run config (see :mod:`neuralcomputer.config`).
        tokenizer: an already-built tokenizer (e.g. a trained cell AE); built from config if None.
    """

    def __init__(self, config: dict[str, Any], tokenizer: nn.Module | None = None) -> None:
        super().__init__()
        from diffusers import WanTransformer3DModel

        self.config = _with_pretrained_paths(config)
        cfg = self.config
        self.tokenizer = tokenizer if tokenizer is not None else build_tokenizer(cfg["tokenizer"])
        self.tokenizer.requires_grad_(False)
        self.text_encoder = build_text_encoder(cfg["text"])
        image = cfg.get("image")
        self.image_encoder: nn.Module | None = None
        if image:
            self.image_encoder = CLIPImageEncoder(image["path"]) if image["kind"] == "clip" and image.get("path") \
                else PatchImageEncoder(image["image_dim"])
        c = self.tokenizer.latent_channels
        r = self.tokenizer.temporal_ratio
        # check the frame size against the tokenizer before building anything large
        self.latent_shape = self.tokenizer.latent_shape(cfg["num_frames"], cfg["height"], cfg["width"])
        t = transformer_kwargs(cfg, self.text_encoder.text_dim)
        if t["text_dim"] != self.text_encoder.text_dim:
            raise NCError(f"transformer.text_dim={t['text_dim']} but the text encoder gives {self.text_encoder.text_dim}")
        _, lt, lh, lw = self.latent_shape
        pt, ph, pw = t["patch_size"]
        if lt % pt or lh % ph or lw % pw:
            raise NCError(f"latent grid {lt}x{lh}x{lw} (frames x rows x cols) is not divisible by patch_size "
                          f"{list(t['patch_size'])}: change the frame size, num_frames or patch_size")
        if cfg.get("pretrained"):
            path = Path(cfg["pretrained"]) / "transformer"
            self.transformer = WanTransformer3DModel.from_pretrained(path, local_files_only=True)
        else:
            self.transformer = WanTransformer3DModel(in_channels=2 * c + r, out_channels=c, **t)

    # -- conditioning ---------------------------------------------------------------------------
    def encode_text(self, captions: list[str]) -> torch.Tensor:
        """Captions -> ``(B, L, text_dim)``; padded to Wan's 512 when an image context is used."""
        emb = self.text_encoder.encode(captions)
        if self.image_encoder is not None and emb.shape[1] != WAN_TEXT_LEN:
            if emb.shape[1] > WAN_TEXT_LEN:
                raise NCError(f"caption longer than {WAN_TEXT_LEN} tokens")
            emb = F.pad(emb, (0, 0, 0, WAN_TEXT_LEN - emb.shape[1]))
        return emb

    def encode_image(self, first_frame: torch.Tensor) -> torch.Tensor | None:
        """``(B, 3, H, W)`` -> image context tokens, or None when the preset has none."""
        return None if self.image_encoder is None else self.image_encoder(first_frame)

    @torch.no_grad()
    def condition(self, first_frame: torch.Tensor | None = None, first_latent: torch.Tensor | None = None) -> torch.Tensor:
        """Wan's I2V condition ``mask ++ first-frame latents``: ``(B, r + C, T', h, w)``.

        ``first_frame``: ``(B, 3, H, W)`` in [0, 1]. For a cell tokenizer every frame is coded alone,
        so ``first_latent`` (``(B, C, 1, h, w)``, e.g. from a latent cache) may be given instead.
        """
        c, lt, lh, lw = self.latent_shape
        r = self.tokenizer.temporal_ratio
        if r == 1:
            if first_latent is None:
                first_latent = self.tokenizer.encode(first_frame[:, None])
            b = first_latent.shape[0]
            grey = self._grey_latent().to(first_latent)
            y = torch.cat([first_latent, grey.expand(b, -1, lt - 1, -1, -1)], dim=2)
        else:
            if first_frame is None:
                raise NCError("this tokenizer codes frames jointly: condition() needs the first frame")
            b = first_frame.shape[0]
            t = (lt - 1) * r + 1
            grey = first_frame.new_full((b, t - 1, *first_frame.shape[1:]), 0.5)
            y = self.tokenizer.encode(torch.cat([first_frame[:, None], grey], 1))
        mask = torch.zeros(b, r, lt, lh, lw, dtype=y.dtype, device=y.device)
        mask[:, :, 0] = 1.0
        return torch.cat([mask, y], dim=1)

    def _grey_latent(self) -> torch.Tensor:
        """``(1, C, 1, h, w)``: the latent of a mid-grey frame (Wan's "unknown frame" filler)."""
        device = next(self.transformer.parameters()).device
        grey = torch.full((1, 1, 3, self.config["height"], self.config["width"]), 0.5, device=device)
        return self.tokenizer.encode(grey)

    # -- denoiser -------------------------------------------------------------------------------
    def forward(self, noisy: torch.Tensor, timestep: torch.Tensor, condition: torch.Tensor, text: torch.Tensor,
                image: torch.Tensor | None = None) -> torch.Tensor:
        """Velocity prediction. ``noisy`` ``(B, C, T', h, w)``, ``timestep`` ``(B,)`` in [0, 1000],
        ``condition`` ``(B, r + C, T', h, w)``, ``text`` ``(B, L, text_dim)`` -> ``(B, C, T', h, w)``."""
        x = torch.cat([noisy, condition.to(noisy.dtype)], dim=1)
        return self.transformer(x, timestep, text, encoder_hidden_states_image=image, return_dict=False)[0]

    # -- persistence ----------------------------------------------------------------------------
    def save_pretrained(self, path: str | Path, state: dict[str, torch.Tensor] | None = None) -> None:
        """Write ``config.json`` + ``<component>.safetensors`` into ``path`` (made atomically by the caller).

        ``state``: an alternative full state dict (e.g. EMA weights) to save instead of the live one.
        """
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        state = state if state is not None else self.state_dict()
        for part in ("transformer", "text_encoder", "tokenizer", "image_encoder"):
            tensors = {k[len(part) + 1:]: v.detach().contiguous().cpu() for k, v in state.items()
                       if k.startswith(part + ".")}
            if part == "tokenizer" and self.config["tokenizer"]["kind"].startswith("wan-vae"):
                continue  # a frozen, pretrained VAE is referenced by path, never copied
            if tensors:
                save_file(tensors, str(path / f"{part}.safetensors"))
        config = copy.deepcopy(self.config)
        if config["tokenizer"]["kind"] == "cell-ae":  # its weights are in this folder: name no path outside it
            config["tokenizer"]["path"] = None  # (the folder moves; from_pretrained reads its own files)
        (path / "config.json").write_text(json.dumps({"kind": "cligen", "model": config}, indent=2))

    @classmethod
    def from_pretrained(cls, path: str | Path) -> CLIGenModel:
        """Load a model directory written by :meth:`save_pretrained` (no network)."""
        path = Path(path)
        config = read_model_config(path)
        cfg = dict(config["model"])
        cfg["pretrained"] = None  # weights come from this directory, not from the original checkout
        if cfg["tokenizer"]["kind"] == "cell-ae":
            cfg["tokenizer"] = {**cfg["tokenizer"], "path": None}  # its weights are in this directory too
        model = cls(cfg)
        state = {}
        for part in ("transformer", "text_encoder", "tokenizer", "image_encoder"):
            file = path / f"{part}.safetensors"
            if file.exists():
                try:
                    state.update({f"{part}.{k}": v for k, v in load_file(str(file)).items()})
                except Exception as e:  # safetensors raises several types on a damaged file
                    raise NCError(f"{file}: unreadable weights ({e})") from None
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.startswith("tokenizer.vae.")]
        if missing or unexpected:
            raise NCError(f"{path}: weights do not match config.json (missing {missing[:3]}, unexpected {unexpected[:3]})")
        return model.eval()


def read_model_config(path: str | Path) -> dict[str, Any]:
    """``config.json`` of a model directory, checked."""
    file = Path(path) / "config.json"
    if not file.is_file():
        raise NCError(f"{path}: not a model directory (no config.json)")
    try:
        config = json.loads(file.read_text())
    except json.JSONDecodeError as e:
        raise NCError(f"{file}:{e.lineno}: invalid JSON ({e.msg})") from None
    if not isinstance(config, dict) or "model" not in config:
        raise NCError(f"{file}: expected an object with a `model` key")
    return config
