"""Pipelines: a trained model + a sampler + I/O, the one way everything above generates frames.

:mod:`.cligen` samples a terminal clip from a first frame and a caption (``ncomp sample``, eval, probes,
the runtime); :mod:`.guiworld` rolls a desktop out frame by frame under actions. As in diffusers,
``diffusion/`` knows no network and ``models/`` knows no sampler: only this stage joins them.
"""
