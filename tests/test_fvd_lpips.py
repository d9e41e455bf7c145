"""LPIPS, FVD and weight discovery, run end to end on random networks saved in the real checkpoint formats.

No pretrained weights exist here, so each test writes random weights to disk under the published
file names and key layouts (torchvision's AlexNet and r3d_18, the lpips package's ``alex.pth``) and
loads them back through ``find_weights`` / ``from_weights``, exactly as a user's real files would be.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from neuralcomputer.errors import NCError
from neuralcomputer.eval.fvd import (
    KINETICS_MEAN,
    KINETICS_STD,
    R3D18,
    frechet_distance,
    fvd,
    fvd_features,
    fvd_from_features,
    preprocess_clip,
    subsample_or_pad,
)
from neuralcomputer.eval.lpips import ALEX_CHANNELS, LPIPS, AlexNetFeatures, lpips_per_frame, lpips_video
from neuralcomputer.eval.weights import find_lpips_weights, find_weights, load_state_dict

# torchvision's AlexNet state dict, as in alexnet-owt-7be5be79.pth.
ALEXNET_SHAPES = {
    "features.0.weight": (64, 3, 11, 11),
    "features.0.bias": (64,),
    "features.3.weight": (192, 64, 5, 5),
    "features.3.bias": (192,),
    "features.6.weight": (384, 192, 3, 3),
    "features.6.bias": (384,),
    "features.8.weight": (256, 384, 3, 3),
    "features.8.bias": (256,),
    "features.10.weight": (256, 256, 3, 3),
    "features.10.bias": (256,),
    "classifier.1.weight": (4096, 9216),
    "classifier.1.bias": (4096,),
    "classifier.4.weight": (4096, 4096),
    "classifier.4.bias": (4096,),
    "classifier.6.weight": (1000, 4096),
    "classifier.6.bias": (1000,),
}


@pytest.fixture
def no_weight_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point every place ``find_weights`` looks at an empty temp dir (never the real home cache)."""
    monkeypatch.delenv("NC_WEIGHTS_DIR", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path


def _write_alexnet(path: Path, seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    state = {f"features.{k}": v.clone() for k, v in AlexNetFeatures().features.state_dict().items()}
    # The classifier (~230 MB) is never used; a stride-0 view stores one number yet keeps the real shape.
    for key, shape in ALEXNET_SHAPES.items():
        if key.startswith("classifier."):
            state[key] = torch.zeros(1).expand(*shape)
    assert {k: tuple(v.shape) for k, v in state.items()} == ALEXNET_SHAPES
    torch.save(state, path)
    return state


def _write_lpips_lins(path: Path, seed: int = 1) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    # The released LPIPS weights are non-negative (clamped in training); random ones must be too.
    state = {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1, generator=generator) for i, c in enumerate(ALEX_CHANNELS)}
    torch.save(state, path)
    return state


@pytest.fixture
def lpips_model(no_weight_dirs: Path, monkeypatch: pytest.MonkeyPatch) -> LPIPS:
    weights_dir = no_weight_dirs / "weights"
    weights_dir.mkdir()
    monkeypatch.setenv("NC_WEIGHTS_DIR", str(weights_dir))
    _write_alexnet(weights_dir / "alexnet-owt-7be5be79.pth")
    _write_lpips_lins(weights_dir / "alex.pth")
    alexnet_path, lin_path = find_weights("alexnet"), find_weights("lpips_alex")
    assert alexnet_path is not None and lin_path is not None
    return LPIPS.from_weights(alexnet_path, lin_path)


@pytest.fixture(scope="module")
def r3d18_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random r3d_18 saved under torchvision's file name (133 MB, written once per module)."""
    torch.manual_seed(0)
    model = R3D18()
    for module in model.modules():  # torchvision's init, so features are not vanishingly small
        if isinstance(module, torch.nn.Conv3d):
            torch.nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    directory = tmp_path_factory.mktemp("r3d")
    path = directory / "r3d_18-b3b3357e.pth"
    torch.save(model.state_dict(), path)
    return path


# ---- weights -------------------------------------------------------------------------------------


def test_find_weights_returns_none_when_nothing_is_there(no_weight_dirs: Path) -> None:
    for name in ("alexnet", "lpips_alex", "r3d18"):
        assert find_weights(name) is None
    assert find_weights("r3d18", no_weight_dirs) is None  # an existing but empty directory


def test_find_weights_search_order(no_weight_dirs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hub = no_weight_dirs / "torch_home" / "hub" / "checkpoints"
    env_dir, explicit_dir = no_weight_dirs / "env", no_weight_dirs / "explicit"
    for directory in (hub, env_dir, explicit_dir):
        directory.mkdir(parents=True)
    (hub / "r3d_18-b3b3357e.pth").write_bytes(b"hub")
    assert find_weights("r3d18") == hub / "r3d_18-b3b3357e.pth"
    (env_dir / "r3d_18-b3b3357e.pth").write_bytes(b"env")
    monkeypatch.setenv("NC_WEIGHTS_DIR", str(env_dir))
    assert find_weights("r3d18") == env_dir / "r3d_18-b3b3357e.pth"
    (explicit_dir / "r3d_18-b3b3357e.pth").write_bytes(b"explicit")
    assert find_weights("r3d18", explicit_dir) == explicit_dir / "r3d_18-b3b3357e.pth"
    odd_name = no_weight_dirs / "my_r3d.pt"
    odd_name.write_bytes(b"x")
    assert find_weights("r3d18", odd_name) == odd_name
    # torchvision < 0.13 named the same AlexNet weights differently.
    (env_dir / "alexnet-owt-4df8aa71.pth").write_bytes(b"old")
    assert find_weights("alexnet") == env_dir / "alexnet-owt-4df8aa71.pth"


def test_find_weights_default_torch_home(no_weight_dirs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TORCH_HOME")
    monkeypatch.delenv("XDG_CACHE_HOME")
    hub = no_weight_dirs / "home" / ".cache" / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / "alex.pth").write_bytes(b"x")
    assert find_weights("lpips_alex") == hub / "alex.pth"


def test_find_lpips_weights_needs_both_files(no_weight_dirs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = no_weight_dirs / "lpips"
    folder.mkdir()
    assert find_lpips_weights() is None and find_lpips_weights(folder) is None
    (folder / "alex.pth").write_bytes(b"x")
    assert find_lpips_weights(folder) is None  # the AlexNet trunk is still missing
    (folder / "alexnet-owt-7be5be79.pth").write_bytes(b"x")
    both = (folder / "alexnet-owt-7be5be79.pth", folder / "alex.pth")
    assert find_lpips_weights(folder) == both
    assert find_lpips_weights(folder / "alex.pth") == both  # one file: the other is found beside it
    assert find_lpips_weights(folder / "alexnet-owt-7be5be79.pth") == both
    monkeypatch.setenv("NC_WEIGHTS_DIR", str(folder))
    assert find_lpips_weights() == both


def test_find_weights_errors(no_weight_dirs: Path) -> None:
    with pytest.raises(NCError, match="unknown weights"):
        find_weights("vgg")
    with pytest.raises(NCError, match="no such weights"):
        find_weights("alexnet", no_weight_dirs / "typo.pth")
    bad = no_weight_dirs / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(NCError, match="cannot read"):
        load_state_dict(bad)


# ---- LPIPS ---------------------------------------------------------------------------------------


def test_lpips_loads_the_checkpoint_weights(lpips_model: LPIPS, no_weight_dirs: Path) -> None:
    saved = torch.load(no_weight_dirs / "weights" / "alexnet-owt-7be5be79.pth", weights_only=True)
    lins = torch.load(no_weight_dirs / "weights" / "alex.pth", weights_only=True)
    state = lpips_model.state_dict()
    for index in (0, 3, 6, 8, 10):
        torch.testing.assert_close(state[f"net.features.{index}.weight"], saved[f"features.{index}.weight"])
        torch.testing.assert_close(state[f"net.features.{index}.bias"], saved[f"features.{index}.bias"])
    for i in range(5):
        torch.testing.assert_close(state[f"lin{i}.model.1.weight"], lins[f"lin{i}.model.1.weight"])


def test_lpips_is_zero_on_equal_symmetric_and_positive(lpips_model: LPIPS) -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (3, 64, 80, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (3, 64, 80, 3), dtype=np.uint8)
    assert lpips_video(a, a.copy(), lpips_model) == 0.0
    ab, ba = lpips_per_frame(a, b, lpips_model), lpips_per_frame(b, a, lpips_model)
    np.testing.assert_allclose(ab, ba, rtol=1e-5)
    assert (ab > 0).all()
    assert lpips_video(a, b, lpips_model) == pytest.approx(ab.mean())
    slightly = np.clip(a.astype(int) + 3, 0, 255).astype(np.uint8)
    assert 0 < lpips_video(a, slightly, lpips_model) < lpips_video(a, b, lpips_model)


def test_lpips_matches_a_direct_computation(lpips_model: LPIPS) -> None:
    """Scaling layer, channel normalisation, 1x1 weighting and averaging, written out once more."""
    torch.manual_seed(3)
    x0, x1 = torch.rand(2, 3, 64, 64) * 2 - 1, torch.rand(2, 3, 64, 64) * 2 - 1
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
    features = lpips_model.net.features
    h0, h1, expected = (x0 - shift) / scale, (x1 - shift) / scale, torch.zeros(2)
    taps = 0
    for index, layer in enumerate(features):
        h0, h1 = layer(h0), layer(h1)
        if isinstance(layer, torch.nn.ReLU):
            n0 = h0 / (h0.norm(dim=1, keepdim=True) + 1e-10)
            n1 = h1 / (h1.norm(dim=1, keepdim=True) + 1e-10)
            w = getattr(lpips_model, f"lin{taps}").model[1].weight  # (1, C, 1, 1)
            expected += ((n0 - n1) ** 2 * w).sum(dim=1).mean(dim=(1, 2))
            taps += 1
        if index == 11:
            break
    assert taps == 5
    torch.testing.assert_close(lpips_model(x0, x1), expected, rtol=1e-4, atol=1e-6)


def test_lpips_rejects_foreign_checkpoints(no_weight_dirs: Path) -> None:
    alex = no_weight_dirs / "alexnet.pth"
    _write_alexnet(alex)
    lins = no_weight_dirs / "alex.pth"
    torch.save({"lin0.model.1.weight": torch.rand(1, 64, 1, 1)}, lins)
    with pytest.raises(NCError, match=r"missing lin1\.model\.1\.weight"):
        LPIPS.from_weights(alex, lins)
    torch.save({"features.0.weight": torch.rand(64, 3, 11, 11)}, alex)
    _write_lpips_lins(lins)
    with pytest.raises(NCError, match="keys do not match"):
        LPIPS.from_weights(alex, lins)


# ---- FVD -----------------------------------------------------------------------------------------


def test_frechet_distance_matches_the_closed_form_for_diagonal_covariances() -> None:
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    s1, s2 = rng.uniform(0.1, 3.0, 6), rng.uniform(0.1, 3.0, 6)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, rel=1e-9)
    # Same covariance, shifted mean: only ||mu1 - mu2||^2 is left.
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s1)) == pytest.approx(np.sum((mu1 - mu2) ** 2))


def test_frechet_distance_under_rotation_shift_and_singular_covariances() -> None:
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    s1, s2 = rng.uniform(0.5, 2.0, 5), rng.uniform(0.5, 2.0, 5)
    expected = np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    got = frechet_distance(np.zeros(5), q @ np.diag(s1) @ q.T, np.zeros(5), q @ np.diag(s2) @ q.T)
    assert got == pytest.approx(expected, rel=1e-7)
    base = rng.normal(size=(50, 8))
    distances = [fvd_from_features(base + shift, base) for shift in (0.0, 0.5, 1.0, 2.0)]
    assert distances[0] == pytest.approx(0.0, abs=1e-9) and distances == sorted(distances)
    assert distances[2] == pytest.approx(8 * 1.0**2, rel=1e-6)  # same covariance: ||shift||^2
    few = rng.normal(size=(4, 32))  # 4 samples in 32 dimensions: rank-3 covariance
    assert fvd_from_features(few, few) == pytest.approx(0.0, abs=1e-6 * np.trace(np.cov(few.T)))
    assert math.isfinite(fvd_from_features(few, rng.normal(size=(4, 32))))


def test_subsample_or_pad() -> None:
    frames = np.arange(40)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8)
    picked = subsample_or_pad(frames, 16)
    np.testing.assert_array_equal(picked[:, 0, 0, 0], np.linspace(0, 39, 16).round())
    assert picked[0, 0, 0, 0] == 0 and picked[-1, 0, 0, 0] == 39
    np.testing.assert_array_equal(subsample_or_pad(frames[:16], 16), frames[:16])
    padded = subsample_or_pad(frames[:5], 16)
    assert padded.shape == (16, 2, 2, 3)
    np.testing.assert_array_equal(padded[:, 0, 0, 0], [0, 1, 2, 3, 4] + [4] * 11)
    with pytest.raises(NCError):
        subsample_or_pad(frames[:0])


def test_preprocess_clip_layout_and_normalisation() -> None:
    clip = np.full((7, 90, 150, 3), 128, dtype=np.uint8)
    x = preprocess_clip(clip)
    assert x.shape == (3, 16, 112, 112)  # (C, T, H, W)
    for c in range(3):
        expected = (128 / 255 - KINETICS_MEAN[c]) / KINETICS_STD[c]
        torch.testing.assert_close(x[c], torch.full((16, 112, 112), expected), rtol=1e-5, atol=1e-5)


def test_r3d18_matches_torchvision_layout() -> None:
    model = R3D18()
    state = model.state_dict()
    assert sum(p.numel() for p in model.parameters()) == 33_371_472  # torchvision's r3d_18 count
    assert len(state) == 122
    assert tuple(state["stem.0.weight"].shape) == (64, 3, 3, 7, 7)
    assert tuple(state["layer1.0.conv1.0.weight"].shape) == (64, 64, 3, 3, 3)
    assert "layer1.0.conv1.1.running_var" in state and "layer1.0.conv2.1.num_batches_tracked" in state
    assert "layer1.0.downsample.0.weight" not in state
    for layer, (c_in, c_out) in {2: (64, 128), 3: (128, 256), 4: (256, 512)}.items():
        assert tuple(state[f"layer{layer}.0.downsample.0.weight"].shape) == (c_out, c_in, 1, 1, 1)
        assert f"layer{layer}.0.downsample.1.running_mean" in state
    assert tuple(state["fc.weight"].shape) == (400, 512) and tuple(state["fc.bias"].shape) == (400,)
    torch.manual_seed(0)
    model.eval()
    with torch.no_grad():
        assert model.features(torch.randn(1, 3, 16, 112, 112)).shape == (1, 512)


def test_r3d18_loads_checkpoints_without_batchnorm_counters(tmp_path: Path) -> None:
    torch.manual_seed(0)
    state = {k: v for k, v in R3D18().state_dict().items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "r3d_18-b3b3357e.pth"
    torch.save(state, path)
    loaded = R3D18.from_weights(path).state_dict()
    torch.testing.assert_close(loaded["layer4.1.conv2.0.weight"], state["layer4.1.conv2.0.weight"])
    assert not loaded["stem.0.weight"].requires_grad


def test_r3d18_rejects_foreign_checkpoints(tmp_path: Path) -> None:
    path = tmp_path / "r3d.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, path)
    with pytest.raises(NCError, match="do not match an r3d_18"):
        R3D18.from_weights(path)


@pytest.mark.slow
def test_fvd_end_to_end_on_a_saved_checkpoint(
    r3d18_checkpoint: Path, no_weight_dirs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NC_WEIGHTS_DIR", str(r3d18_checkpoint.parent))
    path = find_weights("r3d18")
    assert path == r3d18_checkpoint
    model = R3D18.from_weights(path)
    torch.testing.assert_close(model.state_dict()["layer3.0.conv1.0.weight"],
                               torch.load(path, weights_only=True)["layer3.0.conv1.0.weight"])
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:60, 0:80]
    clips = []
    for _ in range(2):  # smooth moving gradients with noise: plausible video, not white noise
        phase = rng.uniform(0, 6)
        frames = [
            np.stack([np.sin(xx / 9 + phase + t / 3), np.cos(yy / 7 - t / 4), np.sin((xx + yy) / 11)], -1)
            for t in range(20)
        ]
        clip = (np.array(frames) * 100 + 128 + rng.normal(0, 5, (20, 60, 80, 3))).clip(0, 255)
        clips.append(clip.astype(np.uint8))
    ref = fvd_features(clips, model)
    assert ref.shape == (2, 512)
    assert fvd_from_features(ref, ref) == pytest.approx(0.0, abs=1e-6 * max(1.0, float(np.trace(np.cov(ref.T)))))
    shifted = [np.clip(c.astype(int) + 60, 0, 255).astype(np.uint8) for c in clips]
    # The whole path once more: preprocessing, features, distance; brighter clips sit further away.
    assert fvd(shifted, clips, model) > 1e3 * abs(fvd_from_features(ref, ref))
