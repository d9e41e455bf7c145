"""Benchmarks (``ncomp bench ...``): speed and memory figures printed as one JSON line each.

The one home of benchmark code: :mod:`.render` (terminal rendering), :mod:`.emulators` (VT emulators
on real casts), :mod:`.collect` (desktop collection), :mod:`.ocr` (OCR readers), :mod:`.train`
(training, sampling, rollout, tokenizers, FLOPs) and :mod:`.serve` (the web runtime). The figures
they printed on this machine are in ``benchmarks/README.md``; never timed asserts in tests.
"""
