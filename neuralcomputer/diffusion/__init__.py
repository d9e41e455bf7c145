"""Rectified flow as Wan uses it: noise path, loss, timestep sampling, samplers (no network code here)."""
