"""GUIWorld: an action-conditioned next-frame model of a desktop on Wan's DiT, four action injection modes.

A window of ``K = context_frames + 1`` latent frames is denoised as one sequence: the context frames
(what the screen showed) and the target frame (what it shows after the actions). Each frame enters
with Wan's I2V channel layout ``latent ++ mask ++ reference`` extended by a cursor channel group:
context frames carry their latents (noise-augmented against drift, with their noise level as their
tokens' timestep), mask 1 and themselves as reference; the target carries its noisy latents, mask 0,
the previous frame as reference and, with cursor supervision, the latents of a *cursor reference*:
the cursor alone, drawn at the logged pointer as a soft arrow mask (the paper's SVG mask/reference,
which took cursor accuracy from 8.7% to 98.7%).

Attention is frame-causal (a frame sees itself and earlier frames), so the context never depends
on the target: a rollout computes the context's keys and values once per new frame and each of the
sampler's steps then runs only the target frame's tokens (:meth:`GUIWorldModel.context_pass`,
:meth:`GUIWorldModel.target_pass`; equal to the full pass, tested).

Injection modes (``injection``), one interface, all zero-initialised so a fresh model *is* the backbone:

* ``external``   -- each frame's pooled action features scale and shift its latents before the transformer;
* ``contextual`` -- action tokens join every block's self-attention as extra keys/values, mixed in by a
                    zero-initialised per-block gate ``g``: ``out = attn(visual) + g * (attn(visual+action) - attn(visual))``
                    (``g = 1`` is plain joint attention; this costs a second attention per block);
* ``residual``   -- a ControlNet/VACE-style parallel branch of Wan blocks that cross-attends to the action
                    tokens, its output added back after the first ``residual_blocks`` backbone blocks through
                    zero-initialised projections;
* ``internal``   -- a dedicated action cross-attention in every block (zero-initialised output).

The weights of the backbone stay in a diffusers ``WanTransformer3DModel`` (so pretrained Wan weights
load), but its blocks are run by :meth:`GUIWorldModel._block`, which re-implements Wan's block forward
to add the frame-causal mask, the key/value cache and the injection hooks; with one timestep, no
mask and no actions it equals diffusers' forward (tested).

Legend: B batch, K window frames, C latent channels, h x w latent grid, N tokens, D width, A action tokens.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from neuralcomputer.errors import NCError
from neuralcomputer.models.actions import build_action_encoder
from neuralcomputer.models.cligen import build_tokenizer, read_model_config, transformer_kwargs

INJECTIONS = ("external", "contextual", "residual", "internal", "none")


def _rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Wan's rotary embedding on ``(B, N, H, d)`` with interleaved pairs (cos/sin ``(1, N, 1, d)``)."""
    x1, x2 = x.unflatten(-1, (-1, 2)).unbind(-1)
    cos, sin = cos[..., 0::2], sin[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = x1 * cos - x2 * sin
    out[..., 1::2] = x1 * sin + x2 * cos
    return out.type_as(x)


class ActionCrossAttention(nn.Module):
    """``internal`` mode: visual tokens attend to the action tokens; output projection zero-initialised."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        nn.init.zeros_(self.attn.out_proj.weight)
        nn.init.zeros_(self.attn.out_proj.bias)

    def forward(self, x: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return self.attn(self.norm(x), actions, actions, need_weights=False)[0]  # (B, N, D)


class GUIWorldModel(nn.Module):
    """Tokenizer + action encoder + Wan DiT with one of four action injection modes.

    Args:
        config: the ``model`` part of a ``guiworld`` run config (see :mod:`neuralcomputer.config`).
        tokenizer: an already-built tokenizer (e.g. a trained cell AE); built from config if None.
    """

    def __init__(self, config: dict[str, Any], tokenizer: nn.Module | None = None) -> None:
        super().__init__()
        from diffusers import WanTransformer3DModel
        from diffusers.models.transformers.transformer_wan import WanTransformerBlock

        self.config = copy.deepcopy(config)
        cfg = self.config
        if cfg["injection"] not in INJECTIONS:
            raise NCError(f"injection={cfg['injection']!r}: expected one of {', '.join(INJECTIONS)}")
        self.tokenizer = tokenizer if tokenizer is not None else build_tokenizer(cfg["tokenizer"])
        self.tokenizer.requires_grad_(False)
        c, r = self.tokenizer.latent_channels, self.tokenizer.temporal_ratio
        if r != 1:
            raise NCError("GUIWorld needs a per-frame tokenizer (temporal ratio 1), e.g. cell-ae")
        self.window = cfg["context_frames"] + 1
        _, _, lh, lw = self.tokenizer.latent_shape(1, cfg["height"], cfg["width"])
        t = transformer_kwargs(cfg, cfg["transformer"].get("text_dim", 64))
        pt, ph, pw = t["patch_size"]
        if pt != 1 or lh % ph or lw % pw:
            raise NCError(f"latent grid {lh}x{lw} needs patch_size [1, a, b] dividing it, got {list(t['patch_size'])}")
        self.latent_hw = (lh, lw)
        self.frame_tokens = (lh // ph) * (lw // pw)
        self.transformer = WanTransformer3DModel(in_channels=3 * c + 1, out_channels=c, **t)
        dim = t["num_attention_heads"] * t["attention_head_dim"]
        heads = t["num_attention_heads"]
        # The blocks' own cross-attention reads a caption in CLIGen; GUIWorld has none, so it reads one
        # learned token (the actions get their own path, chosen by ``injection``).
        self.null_context = nn.Parameter(torch.zeros(1, 1, t["text_dim"]))
        self.actions = build_action_encoder(cfg["actions"], dim, max_frames=self.window)
        mode = cfg["injection"]
        if mode == "external":
            self.modulate = nn.Linear(dim, 2 * c)
            nn.init.zeros_(self.modulate.weight)
            nn.init.zeros_(self.modulate.bias)
        elif mode == "contextual":
            self.context_gate = nn.Parameter(torch.zeros(t["num_layers"]))
            self.action_norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        elif mode == "residual":
            n = cfg.get("residual_blocks", max(1, t["num_layers"] // 2))
            if not 1 <= n <= t["num_layers"]:
                raise NCError(f"residual_blocks={n}: expected 1..{t['num_layers']}")
            self.branch = nn.ModuleList([WanTransformerBlock(dim, t["ffn_dim"], heads, "rms_norm_across_heads",
                                                             True, 1e-6) for _ in range(n)])
            self.branch_in = nn.Linear(dim, dim)
            self.branch_out = nn.ModuleList([nn.Linear(dim, dim) for _ in range(n)])
            for lin in self.branch_out:
                nn.init.zeros_(lin.weight)
                nn.init.zeros_(lin.bias)
        elif mode == "internal":
            self.action_attn = nn.ModuleList([ActionCrossAttention(dim, heads) for _ in range(t["num_layers"])])

    # -- inputs ---------------------------------------------------------------------------------
    def frame_inputs(self, latents: torch.Tensor, known: bool, reference: torch.Tensor | None = None,
                     cursor: torch.Tensor | None = None) -> torch.Tensor:
        """Channels of frames: ``(B, C, T, h, w)`` -> ``(B, 3C+1, T, h, w)``: latents ++ mask ++ reference ++ cursor.

        Context frames: their latents, mask 1, themselves as reference, no cursor. The target: its noisy
        latents, mask 0, the previous frame as reference (a direct path to copy what did not change, as
        GameNGen and NeuralOS feed past frames on channels) and the cursor reference (or zeros).
        """
        mask = torch.full_like(latents[:, :1], 1.0 if known else 0.0)
        if reference is None:
            reference = latents if known else torch.zeros_like(latents)
        if cursor is None:
            cursor = torch.zeros_like(latents)
        return torch.cat([latents, mask, reference, cursor], dim=1)

    def encode_actions(self, feats: dict[str, Any]) -> torch.Tensor:
        """Action features of the window (:func:`~neuralcomputer.models.actions.featurize`) -> ``(B, K*A, D)``."""
        return self.actions(feats)

    # -- the network ----------------------------------------------------------------------------
    def _embed(self, inputs: torch.Tensor, frame_actions: torch.Tensor | None) -> torch.Tensor:
        """Patch-embed ``(B, 3C+1, T, h, w)`` -> ``(B, T*n, D)``; ``external`` modulates the latents first."""
        if self.config["injection"] == "external" and frame_actions is not None:
            c = self.tokenizer.latent_channels
            scale, shift = self.modulate(frame_actions).transpose(1, 2)[..., None, None].chunk(2, dim=1)  # (B, C, T, 1, 1)
            inputs = torch.cat([inputs[:, :c] * (1 + scale) + shift, inputs[:, c:]], dim=1)
        x = self.transformer.patch_embedding(inputs)
        return x.flatten(2).transpose(1, 2).contiguous()

    def _pooled_actions(self, actions: torch.Tensor, frames: slice) -> torch.Tensor:
        """Mean action token of each frame: ``(B, K*A, D)`` -> ``(B, T, D)`` for the frames in ``frames``."""
        per = actions.unflatten(1, (self.window, -1)).mean(2)
        return per[:, frames]

    def _self_attention(self, i: int, attn: nn.Module, h: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor],
                        mask: torch.Tensor | None, actions: torch.Tensor | None, cache: dict | None,
                        key: Any) -> torch.Tensor:
        """Wan's self-attention with a frame-causal mask, a key/value cache and the ``contextual`` hook."""
        q = attn.norm_q(attn.to_q(h)).unflatten(2, (attn.heads, -1))
        k = attn.norm_k(attn.to_k(h)).unflatten(2, (attn.heads, -1))
        v = attn.to_v(h).unflatten(2, (attn.heads, -1))
        q, k = _rope(q, *rope), _rope(k, *rope)
        if cache is not None:
            if cache["mode"] == "write":
                cache[key] = (k, v)
            else:  # read: the target attends to the cached context and itself
                ck, cv = cache[key]
                k, v = torch.cat([ck, k], dim=1), torch.cat([cv, v], dim=1)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, H, N, d)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        if self.config["injection"] == "contextual" and actions is not None:
            a = self.action_norm(actions)
            ka = attn.norm_k(attn.to_k(a)).unflatten(2, (attn.heads, -1)).transpose(1, 2)
            va = attn.to_v(a).unflatten(2, (attn.heads, -1)).transpose(1, 2)
            joint_mask = None if mask is None else F.pad(mask, (0, ka.shape[2]), value=True)
            joint = F.scaled_dot_product_attention(q, torch.cat([k, ka], 2), torch.cat([v, va], 2), attn_mask=joint_mask)
            out = out + self.context_gate[i] * (joint - out)
        out = out.transpose(1, 2).flatten(2).type_as(h)
        return attn.to_out[1](attn.to_out[0](out))

    def _block(self, i: int, block: nn.Module, x: torch.Tensor, context: torch.Tensor, temb: torch.Tensor,
               rope: tuple[torch.Tensor, torch.Tensor], mask: torch.Tensor | None, actions: torch.Tensor | None,
               cache: dict | None, branch: bool = False) -> torch.Tensor:
        """One Wan block (diffusers' ``WanTransformerBlock.forward`` with per-token ``temb`` (B, N, 6, D))."""
        mods = (block.scale_shift_table.unsqueeze(0) + temb.float()).chunk(6, dim=2)
        shift, scale, gate, c_shift, c_scale, c_gate = (m.squeeze(2) for m in mods)
        h = (block.norm1(x.float()) * (1 + scale) + shift).type_as(x)
        attn_actions = actions if not branch else None
        a = self._self_attention(i, block.attn1, h, rope, mask, attn_actions, cache, ("branch" if branch else "main", i))
        x = (x.float() + a * gate).type_as(x)
        if not branch and self.config["injection"] == "internal" and actions is not None:
            x = x + self.action_attn[i](x, actions)
        x = x + block.attn2(block.norm2(x.float()).type_as(x), context, None, None)
        h = (block.norm3(x.float()) * (1 + c_scale) + c_shift).type_as(x)
        return (x.float() + block.ffn(h).float() * c_gate).type_as(x)

    def _run(self, inputs: torch.Tensor, timesteps: torch.Tensor, actions: torch.Tensor | None,
             frames: slice, causal: bool, cache: dict | None) -> torch.Tensor:
        """The transformer over window frames ``frames``: inputs ``(B, 3C+1, T, h, w)``, per-frame timesteps
        ``(B, T)`` -> velocity ``(B, C, T, h, w)``."""
        tr = self.transformer
        b, _, t, lh, lw = inputs.shape
        n = self.frame_tokens
        full = torch.zeros(1, 1, self.window, lh, lw, device=inputs.device)
        cos, sin = tr.rope(full)  # positions of the whole window; this call's frames are a slice of it
        rope = (cos[:, frames.start * n: frames.stop * n], sin[:, frames.start * n: frames.stop * n])
        frame_actions = self._pooled_actions(actions, frames) if actions is not None else None
        x = self._embed(inputs, frame_actions)  # (B, T*n, D)
        token_t = timesteps.repeat_interleave(n, dim=1)  # (B, T*n)
        temb, proj, context, _ = tr.condition_embedder(token_t.flatten(), self.null_context.expand(b, -1, -1), None,
                                                       timestep_seq_len=token_t.shape[1])
        proj = proj.unflatten(2, (6, -1))  # (B, N, 6, D)
        mask = None
        if causal:
            # frame-causal: a token sees its own frame and earlier ones (cached keys come first)
            q_frame = torch.arange(frames.start, frames.stop, device=x.device).repeat_interleave(n)
            k_start = 0 if cache is not None and cache["mode"] == "read" else frames.start
            k_frame = torch.arange(k_start, frames.stop, device=x.device).repeat_interleave(n)
            mask = k_frame[None, :] <= q_frame[:, None]  # (Nq, Nk)
        hints = []
        if self.config["injection"] == "residual" and actions is not None:
            # the branch depends on the embedded tokens and the actions only, so it runs first
            hint = self.branch_in(x)
            for j, block in enumerate(self.branch):
                hint = self._block(j, block, hint, actions, proj, rope, mask, None, cache, branch=True)
                hints.append(self.branch_out[j](hint))
        for i, block in enumerate(tr.blocks):
            x = self._block(i, block, x, context, proj, rope, mask, actions, cache)
            if i < len(hints):
                x = x + hints[i]
        shift, scale = (tr.scale_shift_table.unsqueeze(0) + temb.unsqueeze(2)).chunk(2, dim=2)
        x = (tr.norm_out(x.float()) * (1 + scale.squeeze(2)) + shift.squeeze(2)).type_as(x)
        x = tr.proj_out(x)  # (B, N, p_h*p_w*C)
        _, ph, pw = tr.config.patch_size
        x = x.reshape(b, t, lh // ph, lw // pw, 1, ph, pw, -1).permute(0, 7, 1, 4, 2, 5, 3, 6)
        return x.flatten(6, 7).flatten(4, 5).flatten(2, 3)

    # -- public passes --------------------------------------------------------------------------
    def forward(self, target: torch.Tensor, timestep: torch.Tensor, context: torch.Tensor,
                context_timestep: torch.Tensor, actions: torch.Tensor | None,
                reference: torch.Tensor | None = None, causal: bool = True) -> torch.Tensor:
        """Velocity of the target frame from the whole window in one pass (training, uncached sampling).

        Shapes: target ``(B, C, 1, h, w)`` noisy latents at ``timestep`` ``(B,)`` (0..1000); context
        ``(B, C, K-1, h, w)`` (noise-augmented) latents at ``context_timestep`` ``(B,)``; actions
        ``(B, K*A, D)`` from :meth:`encode_actions` (None: no action path); reference ``(B, C, 1, h, w)``
        cursor-reference latents or None. Returns ``(B, C, 1, h, w)``.
        """
        k = self.window
        inputs = torch.cat([self.frame_inputs(context, True),
                            self.frame_inputs(target, False, context[:, :, -1:], reference)], dim=2)
        steps = torch.cat([context_timestep[:, None].expand(-1, k - 1), timestep[:, None]], dim=1).float()
        return self._run(inputs, steps, actions, slice(0, k), causal, None)[:, :, -1:]

    @torch.no_grad()
    def context_pass(self, context: torch.Tensor, context_timestep: torch.Tensor,
                     actions: torch.Tensor | None) -> dict:
        """Keys and values of the context frames at every layer: the cache :meth:`target_pass` reads."""
        cache: dict = {"mode": "write"}
        k = self.window
        steps = context_timestep[:, None].expand(-1, k - 1).float()
        self._run(self.frame_inputs(context, True), steps, actions, slice(0, k - 1), True, cache)
        cache["mode"], cache["previous"] = "read", context[:, :, -1:]
        return cache

    def target_pass(self, target: torch.Tensor, timestep: torch.Tensor, actions: torch.Tensor | None,
                    cache: dict, reference: torch.Tensor | None = None) -> torch.Tensor:
        """Velocity of the target frame running only its own tokens against the cached context."""
        k = self.window
        inputs = self.frame_inputs(target, False, cache["previous"], reference)
        return self._run(inputs, timestep[:, None].float(), actions, slice(k - 1, k), True, cache)

    # -- save / load ----------------------------------------------------------------------------
    def save_pretrained(self, path: str | Path) -> None:
        """``config.json`` + one safetensors file per component (tokenizer, transformer, actions, injection)."""
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        parts: dict[str, dict[str, torch.Tensor]] = {}
        for k, v in state.items():
            head = k.split(".")[0]
            part = head if head in ("tokenizer", "transformer", "actions") else "injection"
            parts.setdefault(part, {})[k] = v
        for part, tensors in parts.items():
            save_file(tensors, str(path / f"{part}.safetensors"))
        # The tokenizer's weights are in this folder: its config names no path outside it (the folder moves).
        config = {**self.config, "tokenizer": {**self.config["tokenizer"], "path": None}}
        (path / "config.json").write_text(json.dumps({"kind": "guiworld", "model": config}, indent=2))

    @classmethod
    def from_pretrained(cls, path: str | Path) -> GUIWorldModel:
        """Load a model directory written by :meth:`save_pretrained` (no network)."""
        from safetensors.torch import load_file

        path = Path(path)
        config = read_model_config(path)
        if config.get("kind") != "guiworld":
            raise NCError(f"{path}: a {config.get('kind')!r} model, not a GUIWorld model")
        cfg = dict(config["model"])
        cfg["tokenizer"] = {**cfg["tokenizer"], "path": None}  # its weights are in this directory
        model = cls(cfg)
        state = {}
        for file in sorted(path.glob("*.safetensors")):
            try:
                state.update(load_file(str(file)))
            except Exception as e:  # safetensors raises several types on a damaged file
                raise NCError(f"{file}: unreadable weights ({e})") from None
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise NCError(f"{path}: weights do not match config.json (missing {missing[:3]}, unexpected {unexpected[:3]})")
        return model.eval()


def cursor_reference(pointer: np.ndarray, screen: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """The cursor alone as a soft arrow mask: white on black frames ``(T, H, W, 3)`` uint8.

    ``pointer`` ``(T, 2)`` in screen pixels (``screen`` = (width, height) the actions were logged at); the
    arrow is drawn at screen resolution and box-downsampled to ``size`` (width, height). The frames are
    area-downsampled by torch (``resize_frames``): the same average for the presets' integer ratios
    (1024x768 or 512x384 -> 256x192), close otherwise, so the reference and the frames show one cursor.
    """
    from PIL import Image

    from neuralcomputer.data.desktop.cursor import cursor_mask, cursor_sprite

    sprite = cursor_sprite()
    sw, sh = screen
    out = np.zeros((len(pointer), size[1], size[0], 3), np.uint8)
    for i, (x, y) in enumerate(pointer):
        m = cursor_mask((sh, sw), float(x), float(y), sprite)
        if (sw, sh) != size:
            m = np.asarray(Image.fromarray(m, mode="F").resize(size, Image.BOX))
        out[i] = np.clip(np.round(m * 255), 0, 255).astype(np.uint8)[..., None]
    return out
