"""The "+15" protocol, the cursor sprite, cursor location and the hit rate, on hand-worked cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFont
from scipy.ndimage import gaussian_filter

from neuralcomputer.data.desktop.cursor import composite_cursor, cursor_mask, cursor_sprite
from neuralcomputer.errors import NCError
from neuralcomputer.eval.gui import (
    cursor_hit_rate,
    locate_cursor,
    plus15_frame_indices,
    plus15_fvd_frames,
    plus15_scores,
)
from neuralcomputer.eval.image_metrics import psnr
from neuralcomputer.eval.lpips import LPIPS

# ---- +15 -----------------------------------------------------------------------------------------


def test_plus15_skips_the_action_frame_and_takes_the_next_fifteen() -> None:
    np.testing.assert_array_equal(plus15_frame_indices([0.0], fps=15, num_frames=100), np.arange(1, 16))
    # tau = 2 s at 15 fps lands on frame 30.
    np.testing.assert_array_equal(plus15_frame_indices([2.0], fps=15, num_frames=100), np.arange(31, 46))


def test_plus15_clips_at_the_end_and_drops_actions_past_it() -> None:
    # f = 15: frames 16..30 wanted, only 16..19 exist.
    np.testing.assert_array_equal(plus15_frame_indices([1.0], fps=15, num_frames=20), [16, 17, 18, 19])
    # f = 19 is the last frame: nothing follows it.
    assert plus15_frame_indices([19 / 15], fps=15, num_frames=20).size == 0
    assert plus15_frame_indices([10.0], fps=15, num_frames=30).size == 0
    assert plus15_frame_indices([], fps=15, num_frames=30).size == 0


def test_plus15_merges_overlapping_windows_without_duplicates() -> None:
    # fps 10: f = 0 -> 1..15 and f = 5 -> 6..20; merged 1..20.
    got = plus15_frame_indices([0.5, 0.0, 0.5], fps=10, num_frames=100)
    np.testing.assert_array_equal(got, np.arange(1, 21))
    assert got.dtype == np.int64
    # Disjoint windows stay apart: f = 0 -> 1..3 and f = 10 -> 11..13 with window 3.
    np.testing.assert_array_equal(plus15_frame_indices([0.0, 1.0], 10, 100, window=3), [1, 2, 3, 11, 12, 13])


def test_plus15_rounds_half_up() -> None:
    # 0.1 s * 5 fps = 0.5 -> frame 1 (Python's round() would give 0).
    np.testing.assert_array_equal(plus15_frame_indices([0.1], fps=5, num_frames=100, window=2), [2, 3])
    # 0.29 s * 10 fps = 2.9 -> frame 3.
    np.testing.assert_array_equal(plus15_frame_indices([0.29], fps=10, num_frames=100, window=2), [4, 5])


def test_plus15_scores_use_only_the_selected_frames() -> None:
    rng = np.random.default_rng(0)
    ref = rng.integers(0, 256, (30, 24, 32, 3), dtype=np.uint8)
    pred = ref.copy()
    # Frames 0..9 are exact (PSNR inf); the +15 frames of an action at f = 9 are 10..24, all offset by 10.
    pred[10:] = np.clip(ref[10:].astype(int) + 10, 0, 255).astype(np.uint8)
    scores = plus15_scores(pred, ref, action_times=[0.9], fps=10)
    assert scores["frames"] == 15
    # Only frames 10..24 count: the exact frames 0..9 do not raise the score.
    assert scores["psnr"] == pytest.approx(psnr(pred[10:25], ref[10:25]))
    assert scores["psnr"] < psnr(pred, ref)
    assert math.isfinite(scores["psnr"])
    assert 0 < scores["ssim"] < 1
    assert "lpips" not in scores
    empty = plus15_scores(pred, ref, action_times=[], fps=10)
    assert empty == {"frames": 0, "psnr": None, "ssim": None}


def test_plus15_scores_with_lpips() -> None:
    torch.manual_seed(0)
    model = LPIPS()
    for i in range(5):
        getattr(model, f"lin{i}").model[1].weight.data.abs_()
    rng = np.random.default_rng(1)
    ref = rng.integers(0, 256, (8, 64, 64, 3), dtype=np.uint8)
    pred = ref.copy()
    pred[2:5] = 255 - pred[2:5]
    scores = plus15_scores(pred, ref, action_times=[0.1], fps=10, lpips_model=model, window=3)
    assert scores["frames"] == 3 and scores["lpips"] > 0
    assert plus15_scores(ref, ref, [0.1], 10, lpips_model=model)["lpips"] == 0.0
    assert plus15_scores(ref, ref, [], 10, lpips_model=model)["lpips"] is None


def test_plus15_fvd_frames() -> None:
    frames = np.arange(60)[:, None, None, None] * np.ones((1, 4, 6, 3), np.uint8)
    indices = plus15_frame_indices([0.0, 2.0], fps=15, num_frames=60)  # 1..15 and 31..45
    clip = plus15_fvd_frames(frames, indices)
    assert clip.shape == (16, 4, 6, 3)
    selected = np.concatenate([np.arange(1, 16), np.arange(31, 46)])
    np.testing.assert_array_equal(clip[:, 0, 0, 0], selected[np.linspace(0, 29, 16).round().astype(int)])
    short = plus15_fvd_frames(frames, [58, 59])
    np.testing.assert_array_equal(short[:, 0, 0, 0], [58] + [59] * 15)
    with pytest.raises(NCError):
        plus15_fvd_frames(frames, np.zeros(0, np.int64))


# ---- cursor sprite -------------------------------------------------------------------------------


def test_cursor_sprite_shape_and_look() -> None:
    sprite = cursor_sprite()
    assert sprite.rgba.shape == (19, 12, 4) and sprite.rgba.dtype == np.uint8
    assert sprite.hotspot == (0, 0)
    alpha, grey = sprite.rgba[..., 3], sprite.rgba[..., 0]
    assert alpha[10, 0] == 255 and grey[10, 0] == 0  # left edge: opaque black outline
    assert alpha[10, 4] == 255 and grey[10, 4] == 255  # inside the head: opaque white fill
    assert alpha[2, 10] == 0  # right of the diagonal: transparent
    assert cursor_sprite(2.0).rgba.shape == (38, 24, 4)
    sprite.rgba[...] = 0  # callers get a copy; the cached sprite is untouched
    assert cursor_sprite().rgba[10, 4, 3] == 255


def test_composite_and_mask() -> None:
    sprite = cursor_sprite()
    frame = np.full((40, 50, 3), (30, 60, 90), dtype=np.uint8)
    out = composite_cursor(frame, 5, 7, sprite)
    assert out.shape == frame.shape and out.dtype == np.uint8
    assert (frame == (30, 60, 90)).all()  # input untouched
    mask = cursor_mask(frame.shape, 5, 7, sprite)
    assert mask.shape == (40, 50) and mask.dtype == np.float32
    assert mask.max() == 1.0 and mask.sum() == pytest.approx(sprite.rgba[..., 3].sum() / 255)
    np.testing.assert_array_equal(out[mask == 0], frame[mask == 0])
    np.testing.assert_array_equal(out[17, 5], (0, 0, 0))  # hotspot at (5, 7): outline 10 rows down
    # Clipped at the right/bottom edge, nothing at all when fully off-frame.
    edge = cursor_mask(frame.shape, 45, 30, sprite)
    assert 0 < edge.sum() < mask.sum() and edge[30:, 45:].sum() == pytest.approx(edge.sum())
    np.testing.assert_array_equal(composite_cursor(frame, 60, 10, sprite), frame)
    assert cursor_mask(frame.shape, -30, 10, sprite).sum() == 0
    with pytest.raises(NCError):
        composite_cursor(frame.astype(np.float32), 1, 1, sprite)


# ---- locating the cursor -------------------------------------------------------------------------


def _desktop(rng: np.random.Generator, height: int = 240, width: int = 320) -> np.ndarray:
    """Gradient wallpaper, windows with 1 px dark borders, and a patch of text."""
    yy, xx = np.mgrid[0:height, 0:width]
    frame = np.stack([xx * 255 // width, yy * 255 // height, np.full_like(xx, 140)], axis=-1).astype(np.uint8)
    for _ in range(12):
        x0, y0 = rng.integers(0, width - 20), rng.integers(0, height - 20)
        w, h = rng.integers(10, 160, 2)
        frame[y0 : y0 + h, x0 : x0 + w] = rng.integers(0, 256, 3)
        frame[y0 : y0 + h, x0] = 20
        frame[y0, x0 : x0 + w] = 20
    image = Image.fromarray(frame)
    font = ImageFont.truetype("neuralcomputer/data/fonts/DejaVuSansMono.ttf", 13)
    draw = ImageDraw.Draw(image)
    for row in range(4):
        text = "".join(chr(c) for c in rng.integers(33, 127, 30))
        draw.text((10, 150 + 16 * row), text, fill=(0, 0, 0), font=font)
    return np.asarray(image).copy()


def test_cursor_is_located_on_varied_backgrounds_and_absent_frames_give_none() -> None:
    rng = np.random.default_rng(0)
    sprite = cursor_sprite()
    for _ in range(6):
        frame = _desktop(rng)
        assert locate_cursor(frame, sprite) is None
        x, y = int(rng.integers(0, 300)), int(rng.integers(0, 220))
        found = locate_cursor(composite_cursor(frame, x, y, sprite), sprite)
        assert found is not None and math.hypot(found[0] - x, found[1] - y) <= 1.5


def test_a_slightly_blurred_noisy_cursor_is_still_found() -> None:
    """Generated frames are not pixel-exact: a Gaussian blur (sigma 0.8) and noise (std 8) still match."""
    rng = np.random.default_rng(1)
    sprite = cursor_sprite()
    for _ in range(4):
        frame = _desktop(rng)
        x, y = int(rng.integers(0, 300)), int(rng.integers(0, 220))
        drawn = composite_cursor(frame, x, y, sprite).astype(np.float64)
        degraded = gaussian_filter(drawn, (0.8, 0.8, 0)) + rng.normal(0, 8, drawn.shape)
        found = locate_cursor(degraded.clip(0, 255).astype(np.uint8), sprite)
        assert found is not None and math.hypot(found[0] - x, found[1] - y) <= 2


def test_cursor_on_flat_colours_and_at_the_edges() -> None:
    sprite = cursor_sprite()
    for colour in ((255, 255, 255), (0, 0, 0), (40, 90, 160)):
        frame = np.full((120, 160, 3), colour, dtype=np.uint8)
        assert locate_cursor(frame, sprite) is None
        assert locate_cursor(composite_cursor(frame, 70, 40, sprite), sprite) == (70, 40)
    frame = np.full((120, 160, 3), (40, 90, 160), dtype=np.uint8)
    for xy in ((0, 0), (155, 110), (150, 50)):  # partly off the right/bottom edge
        assert locate_cursor(composite_cursor(frame, *xy, sprite), sprite) == xy
    big = cursor_sprite(2.0)
    assert locate_cursor(composite_cursor(frame, 33, 21, big), big) == (33, 21)


def test_cursor_hit_rate_math() -> None:
    sprite = cursor_sprite()
    background = np.full((100, 140, 3), (200, 200, 200), dtype=np.uint8)
    drawn = [(20, 20), (30, 40), (50, 30), (60, 50), (70, 20)]
    frames = [composite_cursor(background, x, y, sprite) for x, y in drawn] + [background]
    # Logged positions off by 0, 3, 7, 15 and 30 px; the last frame has no cursor at all.
    logged = [(20, 20), (33, 40), (50, 37), (60, 65), (100, 20), (10, 10)]
    rates = cursor_hit_rate(np.stack(frames), logged, sprite)
    assert rates == {2: pytest.approx(1 / 6), 5: pytest.approx(2 / 6), 10: pytest.approx(3 / 6), 20: pytest.approx(4 / 6)}
    assert cursor_hit_rate(np.stack(frames), logged, sprite, radii=(40,)) == {40: pytest.approx(5 / 6)}
    with pytest.raises(NCError):
        cursor_hit_rate(np.stack(frames), logged[:3], sprite)
