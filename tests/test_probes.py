"""Probes with stand-in models whose scores are known."""

from __future__ import annotations

import numpy as np

from neuralcomputer.data.terminal.generators.arithmetic import heldout_problems
from neuralcomputer.eval.interface import ArithmeticOracle, CaptionRenderer, CopyFirstFrame, NoisyCopy
from neuralcomputer.eval.probes import (
    arithmetic_caption,
    arithmetic_problems,
    arithmetic_prompt_frame,
    probe_arithmetic,
    probe_determinism,
    read_answer,
)


def test_problems_come_from_the_heldout_pool_deterministically():
    pool = {p.expression for p in heldout_problems()}
    a, b = arithmetic_problems(50, seed=1), arithmetic_problems(50, seed=1)
    assert a == b and len({p.expression for p in a}) == 50
    assert all(p.expression in pool for p in a)
    assert arithmetic_problems(50, seed=2) != a


def test_read_answer():
    screen = "root@ncomp:~# python3 -q\n>>> 12 + 7\n19\n>>>"
    assert read_answer(screen, "12 + 7") == "19"
    assert read_answer(screen, "1 + 1") is None
    assert read_answer(">>> 12 + 7", "12 + 7") is None


def test_captions_quote_the_answer_only_when_reprompting():
    p = heldout_problems()[3]
    assert p.answer not in arithmetic_caption(p, reprompt=False).replace(p.expression, "")
    assert f"\n{p.answer}\n" in arithmetic_caption(p, reprompt=True)


def test_arithmetic_probe_known_scores():
    n = 12
    copy = probe_arithmetic(CopyFirstFrame(), n=n)
    assert copy["accuracy"] == 0.0 and copy["n"] == n
    renderer_native = probe_arithmetic(CaptionRenderer(), n=n)
    renderer_reprompt = probe_arithmetic(CaptionRenderer(), n=n, reprompt=True)
    assert renderer_native["accuracy"] == 0.0  # renders what it is told, computes nothing
    assert renderer_reprompt["accuracy"] == 1.0  # told the answer, it shows it: the paper's 4% -> 83%
    oracle = probe_arithmetic(ArithmeticOracle(), n=n)
    assert oracle["accuracy"] == 1.0
    assert set(oracle["by_level"]) <= {1, 2, 3, 4, 5, 6}
    item = oracle["items"][0]
    assert item["read"] == item["answer"] and item["correct"]


def test_prompt_frame_shows_the_typed_expression():
    from neuralcomputer.eval.grid_ocr import GridOCR

    frame = arithmetic_prompt_frame("12 + 7")
    assert frame.shape == (24 * 17, 80 * 8, 3) or frame.ndim == 3
    assert GridOCR().read(frame).split("\n")[1] == ">>> 12 + 7"


def test_determinism_probe():
    first = arithmetic_prompt_frame("3 + 4")
    same = probe_determinism(CopyFirstFrame(), first, "x", runs=4, num_frames=3)
    assert same == {"runs": 4, "identical_fraction": 1.0, "mean_pixel_variance": 0.0}
    noisy = probe_determinism(NoisyCopy(), first, "x", runs=4, num_frames=3)
    assert noisy["identical_fraction"] == 0.0 and noisy["mean_pixel_variance"] > 1.0
    assert np.isfinite(noisy["mean_pixel_variance"])


class _HeldOracle(ArithmeticOracle):
    """An oracle whose clip samples every 15th frame (as cligen-tiny): frames 0-14 show the given frame."""

    clip_frames = 61

    def generate(self, first_frame, caption, num_frames, seed):
        sampled = super().generate(first_frame, caption, 5, seed)
        return sampled[np.minimum(np.arange(num_frames) // 15, 4)]


def test_arithmetic_probe_reads_the_models_whole_clip_by_default():
    assert probe_arithmetic(_HeldOracle(), n=4)["accuracy"] == 1.0
    assert probe_arithmetic(_HeldOracle(), n=4, num_frames=15)["accuracy"] == 0.0  # the given frame only
