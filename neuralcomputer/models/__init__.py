"""Tokenizers, caption encoders and the Wan backbone wrapper (no training code here)."""
