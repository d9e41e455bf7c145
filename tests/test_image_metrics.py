"""PSNR and SSIM on clips with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from neuralcomputer.errors import NCError
from neuralcomputer.eval import image_metrics
from neuralcomputer.eval.image_metrics import psnr, psnr_per_frame, ssim, ssim_per_frame


def _clip(seed: int = 0, shape: tuple[int, ...] = (4, 32, 48, 3)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def test_identical_clips_give_inf_psnr_and_unit_ssim() -> None:
    clip = _clip()
    assert psnr(clip, clip.copy()) == math.inf
    assert ssim(clip, clip.copy()) == 1.0
    # A dark, sparse frame (a terminal) where float32 filtering alone would give 0.999998.
    terminal = np.zeros((2, 64, 96, 3), dtype=np.uint8)
    terminal[:, 10:12, 5:60] = 200
    assert ssim(terminal, terminal.copy()) == 1.0
    pred = terminal.copy()
    pred[1, 30, 30] = 255
    per_frame = ssim_per_frame(pred, terminal)
    assert per_frame[0] == 1.0 and 0.9 < per_frame[1] < 1.0


def test_constant_offset_has_hand_computed_psnr() -> None:
    ref = np.full((3, 20, 30, 3), 100, dtype=np.uint8)
    pred = ref + np.uint8(10)
    # MSE = (10/255)^2 on [0, 1] frames, so PSNR = 20 log10(255 / 10) = 28.1308 dB.
    assert psnr(pred, ref) == pytest.approx(20 * math.log10(25.5), abs=1e-4)
    assert psnr(pred, ref) == pytest.approx(28.130803608679106, abs=1e-4)


def test_psnr_of_a_clip_uses_the_mse_over_all_its_frames() -> None:
    ref = np.full((2, 16, 16, 3), 50, dtype=np.uint8)
    pred = ref.copy()
    pred[0] += 5  # per frame: 20 log10(255/5) = 34.15 dB
    pred[1] += 50  # per frame: 20 log10(255/50) = 14.15 dB
    per_frame = psnr_per_frame(pred, ref)
    np.testing.assert_allclose(per_frame, [20 * math.log10(51), 20 * math.log10(5.1)], atol=1e-4)
    # clip MSE = (25 + 2500) / 2 -> 10 log10(255^2 / 1262.5) = 17.13 dB (not the 24.15 dB frame mean)
    assert psnr(pred, ref) == pytest.approx(10 * math.log10(255**2 / 1262.5), abs=1e-6)


def test_exact_frames_count_as_zero_error() -> None:
    ref = np.full((3, 16, 16, 3), 50, dtype=np.uint8)
    pred = ref.copy()
    pred[1] += 5
    assert psnr_per_frame(pred, ref)[0] == math.inf
    # a copied first frame neither makes the clip inf nor is dropped: it lowers the clip MSE
    assert psnr(pred, ref) == pytest.approx(10 * math.log10(255**2 / (25 / 3)), abs=1e-6)
    assert psnr(ref, ref) == math.inf


def test_batches_of_clips_keep_their_leading_shape() -> None:
    ref = _clip(2, (2, 3, 24, 24, 3))
    pred = _clip(3, (2, 3, 24, 24, 3))
    assert psnr_per_frame(pred, ref).shape == (2, 3)
    assert ssim_per_frame(pred, ref).shape == (2, 3)
    assert psnr(pred, ref) == pytest.approx((psnr(pred[0], ref[0]) + psnr(pred[1], ref[1])) / 2)


def test_ssim_decreases_as_noise_grows() -> None:
    rng = np.random.default_rng(4)
    # A smooth image with some structure, so SSIM starts near 1.
    yy, xx = np.mgrid[0:48, 0:64]
    base = np.stack([xx * 4, yy * 5, (xx + yy) * 2], axis=-1).clip(0, 255).astype(np.uint8)
    ref = np.repeat(base[None], 3, axis=0)
    scores = []
    for sigma in (2, 10, 40):
        noisy = (ref + rng.normal(0, sigma, ref.shape)).clip(0, 255).astype(np.uint8)
        scores.append(ssim(noisy, ref))
    assert 1.0 > scores[0] > scores[1] > scores[2]


def test_float_frames_are_taken_in_unit_range() -> None:
    ref = _clip(5)
    pred = _clip(6)
    assert psnr(pred / 255.0, ref / 255.0) == pytest.approx(psnr(pred, ref), abs=1e-3)


def test_bad_inputs_raise_one_clear_error() -> None:
    with pytest.raises(NCError, match="differs"):
        psnr(_clip(0, (2, 16, 16, 3)), _clip(0, (3, 16, 16, 3)))
    with pytest.raises(NCError, match="expected frames"):
        psnr(np.zeros((16, 16, 3), np.uint8), np.zeros((16, 16, 3), np.uint8))
    with pytest.raises(NCError, match="at least 11x11"):
        ssim(_clip(0, (1, 8, 8, 3)), _clip(1, (1, 8, 8, 3)))


def test_ssim_and_psnr_equal_torchmetrics_on_terminal_like_frames() -> None:
    """The separable Gaussian window and the integer squared error are speed-ups, not new definitions:
    torchmetrics' own SSIM and PSNR on the same frames (a dark screen with a line of "text" and an edit
    of it, noise, a frame against black) agree to float rounding."""
    from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

    rng = np.random.default_rng(3)
    screen = np.full((3, 64, 96, 3), 30, np.uint8)
    screen[:, 10:14, 5:60] = 220  # a line of "text"
    edited = screen.copy()
    edited[0, 20:24, 5:40] = 220
    edited[1] = np.clip(edited[1] + rng.normal(0, 12, edited[1].shape), 0, 255).astype(np.uint8)
    edited[2] = 0
    ours = image_metrics.ssim_per_frame(edited, screen)
    theirs = structural_similarity_index_measure(image_metrics._to_tensor(edited), image_metrics._to_tensor(screen),
                                                 data_range=1.0, reduction="none").double().numpy()
    assert np.abs(ours - theirs).max() < 1e-4 and ours.min() < 0.5  # a real spread of values, not all ~1
    for t in range(3):
        reference = peak_signal_noise_ratio(image_metrics._to_tensor(edited[t:t + 1]),
                                            image_metrics._to_tensor(screen[t:t + 1]), data_range=1.0)
        assert image_metrics.psnr(edited[t:t + 1], screen[t:t + 1]) == pytest.approx(float(reference), abs=1e-4)
