"""Caption encoders: a byte-level transformer trained jointly (default), or Wan's UMT5 from a local path.

Detailed captions quote literal commands and screen text, so the encoder must see every character:
the byte encoder reads the UTF-8 bytes themselves (no vocabulary, nothing is ever unknown).

Shapes: ``encode(captions)`` returns ``(B, L, text_dim)`` float with padded positions zeroed. The byte
encoder pads to the batch's longest caption rounded up to 64 bytes (Wan pads T5 to a fixed 512; a fixed
1,600 here would make every step pay for the rare longest caption).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch
from torch import nn

from neuralcomputer.errors import NCError

PAD = 256  # byte values are 0..255; 256 is padding


@runtime_checkable
class TextEncoder(Protocol):
    """What the backbone needs from a caption encoder."""

    text_dim: int
    max_len: int

    def encode(self, captions: list[str]) -> torch.Tensor:
        """Captions -> ``(B, L, text_dim)``, padding zeroed."""
        ...


def caption_bytes(caption: str, max_len: int) -> list[int]:
    """UTF-8 bytes of a caption; a caption longer than ``max_len`` bytes is an error, never cut silently."""
    data = caption.encode("utf-8")
    if len(data) > max_len:
        raise NCError(f"caption is {len(data)} bytes; this model reads at most {max_len} "
                      "(shorten it, or train with a larger text_max_len)")
    return list(data)


class ByteTextEncoder(nn.Module):
    """A small pre-norm transformer over caption bytes with learned positions.

    Args:
        text_dim: width (and output size).
        layers, heads: transformer depth and heads.
        max_len: longest caption in bytes.
    """

    def __init__(self, text_dim: int = 128, layers: int = 2, heads: int = 4, max_len: int = 1600) -> None:
        super().__init__()
        self.text_dim = text_dim
        self.max_len = max_len
        self.layers = layers
        self.heads = heads
        self.embed = nn.Embedding(257, text_dim, padding_idx=PAD)
        self.pos = nn.Parameter(torch.randn(max_len, text_dim) * 0.02)
        layer = nn.TransformerEncoderLayer(text_dim, heads, 4 * text_dim, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(text_dim)

    def config(self) -> dict:
        return {"kind": "bytes", "text_dim": self.text_dim, "layers": self.layers, "heads": self.heads,
                "max_len": self.max_len}

    def tokenize(self, captions: list[str]) -> torch.Tensor:
        """``(B, L)`` int64 byte ids padded with :data:`PAD` to the longest caption, rounded up to 64."""
        ids = [caption_bytes(c, self.max_len) for c in captions]
        length = min(self.max_len, max(64, math.ceil(max(len(i) for i in ids) / 64) * 64))
        out = torch.full((len(ids), length), PAD, dtype=torch.long)
        for row, i in zip(out, ids, strict=True):
            row[: len(i)] = torch.tensor(i, dtype=torch.long)
        return out

    def encode(self, captions: list[str]) -> torch.Tensor:
        ids = self.tokenize(captions).to(self.pos.device)
        pad = ids == PAD
        x = self.embed(ids) + self.pos[: ids.shape[1]]
        # An all-padding row (the empty caption of CFG) would make attention softmax over nothing.
        key_pad = pad.clone()
        key_pad[:, 0] = False
        x = self.norm(self.encoder(x, src_key_padding_mask=key_pad))
        return x.masked_fill(pad[..., None], 0.0)  # zero padding, as Wan does with T5 outputs


class UMT5TextEncoder(nn.Module):
    """Wan's UMT5-XXL encoder and tokenizer from a local directory (needs ``transformers``; frozen)."""

    def __init__(self, path: str | Path, max_len: int = 512) -> None:
        super().__init__()
        try:
            from transformers import AutoTokenizer, UMT5EncoderModel
        except ImportError as e:
            raise NCError("the UMT5 text encoder needs the `transformers` package "
                          "(pip install transformers); the default byte encoder does not") from e
        path = Path(path)
        if not path.is_dir():
            raise NCError(f"{path}: no such directory (expected a local Wan2.1 checkout with text_encoder/ and tokenizer/)")
        self.tokenizer = AutoTokenizer.from_pretrained(path / "tokenizer", local_files_only=True)
        self.model = UMT5EncoderModel.from_pretrained(path / "text_encoder", local_files_only=True).eval()
        self.model.requires_grad_(False)
        self.text_dim = int(self.model.config.d_model)
        self.max_len = max_len
        self.path = str(path)

    def config(self) -> dict:
        return {"kind": "umt5", "path": self.path, "max_len": self.max_len}

    @torch.no_grad()
    def encode(self, captions: list[str]) -> torch.Tensor:
        tok = self.tokenizer(captions, padding="max_length", max_length=self.max_len, truncation=False,
                             return_tensors="pt")
        if tok.input_ids.shape[1] > self.max_len:
            raise NCError(f"caption is {tok.input_ids.shape[1]} tokens; UMT5 reads at most {self.max_len}")
        out = self.model(tok.input_ids, attention_mask=tok.attention_mask).last_hidden_state
        return out.masked_fill(~tok.attention_mask.bool()[..., None], 0.0)
