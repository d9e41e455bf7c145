"""Evaluation: pure, unit-tested metric functions over arrays, and `ncomp eval` / `ncomp probe` reports.

The paper's definitions first (OCR with Tesseract, PSNR, SSIM, LPIPS, FVD, the GUI "+15" protocol,
the arithmetic probe), better instruments beside them (grid OCR against the stored screen text,
cursor hit rate, determinism). A metric that cannot be computed says why; it never prints a number.
"""
