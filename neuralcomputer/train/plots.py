"""Training curves of a run: loss and the validation metrics over steps, as one PNG."""

from __future__ import annotations

import json
from pathlib import Path

PANELS = [("loss", "training loss"), ("val/val_loss", "validation loss (fixed noise)"), ("val/psnr", "PSNR (dB)"),
          ("val/ssim", "SSIM"), ("val/char_acc", "grid-OCR char accuracy"), ("val/line_acc", "grid-OCR exact lines")]


def plot_run(run: str | Path) -> Path | None:
    """Write ``run/curves.png`` from ``run/metrics.jsonl``; returns its path (None without metrics)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run = Path(run)
    path = run / "metrics.jsonl"
    if not path.exists():
        return None
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    panels = [(k, title) for k, title in PANELS if any(k in r for r in records)]
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 2.8), squeeze=False)
    for ax, (key, title) in zip(axes[0], panels, strict=True):
        points = [(r["step"], r[key]) for r in records if key in r]
        steps, values = zip(*points, strict=True)
        if key == "loss" and len(values) > 10:
            # per-step loss is noisy (small batches, random noise levels): show it faint, and its
            # exponential moving average on top
            ax.plot(steps, values, linewidth=0.6, alpha=0.3)
            smooth, acc = [], values[0]
            for v in values:
                acc = 0.9 * acc + 0.1 * v
                smooth.append(acc)
            ax.plot(steps, smooth, linewidth=1.2)
        else:
            ax.plot(steps, values, marker="o" if len(points) < 30 else None, markersize=3, linewidth=1)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    fig.suptitle(f"{run.name}", fontsize=10)
    fig.tight_layout()
    out = run / "curves.png"
    tmp = run / ".curves.tmp.png"
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(out)
    return out
