"""CLIGen model: tokenizers, caption encoder, every preset at tiny width, flow, samplers, save/load."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from neuralcomputer.config import PRESETS, apply_overrides, preset_config
from neuralcomputer.data.dataset import load_manifest, read_clip_payload
from neuralcomputer.diffusion.flow import noisy_latents, shift_sigma, velocity_target
from neuralcomputer.diffusion.sampling import make_scheduler, sample
from neuralcomputer.errors import NCError
from neuralcomputer.eval.grid_ocr import GridOCR
from neuralcomputer.models.cligen import CLIGenModel
from neuralcomputer.models.text import ByteTextEncoder
from neuralcomputer.models.tokenizers import CellAETokenizer, CellPixelTokenizer, WanVAETokenizer
from neuralcomputer.pipelines.cligen import CLIGenPipeline, hold_frames
from tests.cligen_helpers import TINY, make_tiny_dataset, tiny_config


@pytest.fixture(scope="module")
def tiny_ds(tmp_path_factory):
    return make_tiny_dataset(tmp_path_factory.mktemp("cligen"))


def _frames(ds, n=2) -> np.ndarray:
    record = load_manifest(ds)[0]
    return read_clip_payload(ds / record["path"])["unique_frames"][:n]


def _tensor(frames: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(frames).permute(0, 3, 1, 2).float().div(255)[None]


# -- tokenizers ---------------------------------------------------------------------------------
def test_cell_pixel_tokenizer_is_exact_on_real_frames(tiny_ds):
    frames = _frames(tiny_ds)
    tok = CellPixelTokenizer((17, 8))
    z = tok.encode(_tensor(frames))
    assert z.shape == (1, 3 * 17 * 8, 2, 8, 40)
    back = tok.decode(z)[0].mul(255).round().byte().permute(0, 2, 3, 1).numpy()
    assert np.array_equal(back, frames)
    ocr = GridOCR()
    assert ocr.read(back[-1]) == ocr.read(frames[-1])


def test_cell_tokenizers_reject_frames_that_are_not_whole_cells():
    with pytest.raises(NCError, match="not a whole number of 8x17 cells"):
        CellAETokenizer().latent_shape(3, 100, 320)


def test_cell_ae_learns_and_normalises(tiny_ds):
    frames = _tensor(_frames(tiny_ds))[0]
    tok = CellAETokenizer(latent_channels=8, hidden=64)
    opt = torch.optim.Adam(tok.parameters(), 3e-3)
    first = None
    for _ in range(60):
        loss = (tok.decode_raw(tok.encode_raw(frames)) - frames).square().mean()
        first = first if first is not None else float(loss.detach())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < first / 5
    tok.fit_normalisation(frames)
    with torch.no_grad():
        z = tok.encode(frames[None])
    assert z.shape == (1, 8, len(frames), 8, 40)
    assert abs(float(z.mean())) < 0.2 and 0.5 < float(z.std()) < 1.5


def test_wan_vae_tokenizer_pads_and_crops():
    tok = WanVAETokenizer.tiny_random()
    assert (tok.latent_channels, tok.temporal_ratio, tok.spatial_ratio) == (4, 2, 4)
    video = torch.rand(1, 5, 3, 34, 42)  # not a multiple of 4: padded, then cropped back
    assert tok.latent_shape(5, 34, 42) == (4, 3, 9, 11)
    z = tok.encode(video)
    assert z.shape == (1, 4, 3, 9, 11)
    assert tok.decode(z, size=(34, 42)).shape == (1, 5, 3, 34, 42)
    with pytest.raises(NCError, match="1 \\+ 2k"):
        tok.latent_shape(4, 34, 42)


# -- caption encoder ----------------------------------------------------------------------------
def test_byte_encoder_sees_every_character():
    torch.manual_seed(0)
    enc = ByteTextEncoder(text_dim=32, layers=1, heads=2, max_len=128)
    a, b = enc.encode(["ls -la /tmp", "ls -la /tmq"])
    assert a.shape == (64, 32)
    assert not torch.allclose(a[:11], b[:11])  # one byte apart: different embeddings
    assert torch.all(a[11:] == 0)  # padding is zero, as Wan pads T5
    e = enc.encode([""])
    assert torch.isfinite(e).all()
    assert enc.encode(["héllo ✓"]).shape[1] == 64  # UTF-8 bytes, nothing unknown
    with pytest.raises(NCError, match="129 bytes; this model reads at most 128"):
        enc.encode(["x" * 129])


# -- every preset at tiny width -------------------------------------------------------------------
def _tiny_preset(name: str) -> dict:
    """The preset's real structure (tokenizer kind, channel layout, image context) at tiny width."""
    config = preset_config(name)
    m = config["model"]
    if m["tokenizer"]["kind"] == "wan-vae":
        m["tokenizer"] = {"kind": "wan-vae-tiny"}
        m["text"] = {"kind": "bytes", "text_dim": 32, "layers": 1, "heads": 2, "max_len": 512}
        m["transformer"]["text_dim"] = 32
        m.update(height=32, width=48, num_frames=5)
        if m.get("image"):
            m["image"] = {"kind": "patch", "image_dim": 16}
            m["transformer"]["added_kv_proj_dim"] = 48
        m["transformer"].update(num_layers=1, num_attention_heads=2, attention_head_dim=24, ffn_dim=64, freq_dim=32)
        return config
    return apply_overrides(config, [x for x in TINY if not x.startswith(("val", "log"))])


@pytest.mark.parametrize("preset", [p for p in PRESETS if PRESETS[p]["model"]["kind"] == "cligen"])
def test_every_preset_forward_backward_sample_at_tiny_width(preset):
    torch.manual_seed(0)
    config = _tiny_preset(preset)
    model = CLIGenModel(config["model"])
    m = config["model"]
    b = 2
    frames = torch.rand(b, m["num_frames"], 3, m["height"], m["width"])
    x0 = model.tokenizer.encode(frames)
    assert x0.shape == (b, *model.latent_shape)
    cond = model.condition(frames[:, 0])
    r = model.tokenizer.temporal_ratio
    assert cond.shape == (b, r + model.latent_shape[0], *model.latent_shape[1:])
    assert torch.all(cond[:, :r, 0] == 1) and torch.all(cond[:, :r, 1:] == 0)  # Wan's I2V mask
    text = model.encode_text(["the user types `ls`", ""])
    image = model.encode_image(frames[:, 0])
    assert (image is not None) == bool(m.get("image"))
    noise = torch.randn_like(x0)
    pred = model(noisy_latents(x0, noise, torch.tensor([0.3, 0.9])), torch.tensor([300.0, 900.0]), cond, text, image)
    assert pred.shape == x0.shape
    (pred - velocity_target(x0, noise)).square().mean().backward()
    grads = [p.grad for p in model.transformer.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    first = (frames[:, 0].permute(0, 2, 3, 1).numpy() * 255).astype(np.uint8)
    out = CLIGenPipeline(model, steps=2).sample_frames(first, ["a", "b"], seed=0)
    assert out.shape == (b, m["num_frames"], m["height"], m["width"], 3) and out.dtype == np.uint8
    assert np.array_equal(out[:, 0], first)


def test_real_preset_sizes_are_counted_without_memory():
    from neuralcomputer.train.loop import _param_count_meta

    assert 1.2e9 < _param_count_meta(preset_config("wan2.1-i2v-1.3b")) < 1.6e9
    assert 1.4e10 < _param_count_meta(preset_config("wan2.1-i2v-14b")) < 1.8e10


def test_wan_presets_need_local_weights():
    with pytest.raises(NCError, match="needs a local Wan2.1 VAE"):
        CLIGenModel(preset_config("wan2.1-i2v-1.3b")["model"])


# -- flow and samplers ------------------------------------------------------------------------------
def test_rectified_flow_path_and_shift():
    x0, eps = torch.randn(2, 3), torch.randn(2, 3)
    assert torch.allclose(noisy_latents(x0, eps, torch.tensor([0.0, 1.0])), torch.stack([x0[0], eps[1]]))
    u = torch.tensor([0.0, 0.5, 1.0])
    assert torch.allclose(shift_sigma(u, 3.0), torch.tensor([0.0, 0.75, 1.0]))
    assert torch.allclose(shift_sigma(u, 1.0), u)


@pytest.mark.parametrize("sampler", ["euler", "unipc"])
def test_samplers_integrate_an_exact_velocity_to_the_data(sampler):
    # For a single data point x*, the exact velocity at x_sigma is (x_sigma - x*) / sigma: every
    # sampler must land on x* from any noise.
    target = torch.linspace(-1, 1, 12).reshape(1, 3, 4)
    make_scheduler(sampler, 3.0)  # builds offline

    def denoise(x, t):
        sigma = (t / 1000).view(-1, 1, 1).clamp_min(1e-4)
        return (x - target) / sigma

    out = sample(denoise, (1, 3, 4), sampler=sampler, steps=8, shift=3.0, generator=torch.Generator().manual_seed(0))
    # UniPC hands the model integer timesteps, so its sigma is off by < 1e-3: a few 1e-3 of error.
    assert torch.allclose(out, target, atol=5e-3), out - target


def test_hold_frames_maps_samples_to_the_data_rate():
    sampled = np.arange(3)[:, None]
    assert hold_frames(sampled, 5, 12)[:, 0].tolist() == [0] * 5 + [1] * 5 + [2] * 2


# -- persistence and determinism ----------------------------------------------------------------------
def test_save_load_round_trip_and_determinism(tmp_path):
    torch.manual_seed(0)
    config = tiny_config()
    config["model"]["tokenizer"]["path"] = None
    model = CLIGenModel(config["model"])
    model.save_pretrained(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        "config.json", "text_encoder.safetensors", "tokenizer.safetensors", "transformer.safetensors"]
    loaded = CLIGenModel.from_pretrained(tmp_path / "m")
    for (k, v), (k2, v2) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(v, v2)
    first = np.full((136, 320, 3), 30, np.uint8)
    a = CLIGenPipeline(model, steps=3).sample_frames(first[None], ["echo hi"], seed=7)
    b = CLIGenPipeline(loaded, steps=3).sample_frames(first[None], ["echo hi"], seed=7)
    c = CLIGenPipeline(loaded, steps=3).sample_frames(first[None], ["echo hi"], seed=8)
    assert np.array_equal(a, b)  # bit-identical: same weights, inputs and seed
    assert not np.array_equal(a, c)  # the seed matters


def test_corrupt_or_mismatched_model_directories_fail_clearly(tmp_path):
    config = tiny_config()
    config["model"]["tokenizer"]["path"] = None
    model = CLIGenModel(config["model"])
    model.save_pretrained(tmp_path / "m")
    (tmp_path / "m" / "transformer.safetensors").write_bytes(b"not weights")
    with pytest.raises(NCError, match="unreadable weights"):
        CLIGenModel.from_pretrained(tmp_path / "m")
    with pytest.raises(NCError, match="not a model directory"):
        CLIGenModel.from_pretrained(tmp_path)
    other = copy.deepcopy(config["model"])
    other["transformer"]["num_layers"] = 3
    model.save_pretrained(tmp_path / "n")
    cfg = (tmp_path / "n" / "config.json").read_text().replace('"num_layers": 2', '"num_layers": 3')
    (tmp_path / "n" / "config.json").write_text(cfg)
    with pytest.raises(NCError, match="do not match config.json"):
        CLIGenModel.from_pretrained(tmp_path / "n")


def test_first_frame_of_the_wrong_size_is_refused():
    config = tiny_config()
    config["model"]["tokenizer"]["path"] = None
    pipe = CLIGenPipeline(CLIGenModel(config["model"]))
    with pytest.raises(NCError, match="first frame is 640x408; this model takes 320x136"):
        pipe.check_frame(np.zeros((408, 640, 3), np.uint8))


def test_wan_weights_load_from_a_local_checkout(tmp_path):
    """`model.pretrained=DIR` with a diffusers-layout Wan2.1 checkout (tiny here): VAE and transformer
    come from the folder, with no network."""
    from diffusers import WanTransformer3DModel

    config = _tiny_preset("wan2.1-i2v-1.3b")["model"]
    vae = WanVAETokenizer.tiny_random(seed=3).vae
    vae.save_pretrained(tmp_path / "wan" / "vae")
    t = dict(config["transformer"], patch_size=tuple(config["transformer"]["patch_size"]))
    torch.manual_seed(5)
    WanTransformer3DModel(in_channels=2 * 4 + 2, out_channels=4, **t).save_pretrained(tmp_path / "wan" / "transformer")
    config["tokenizer"] = {"kind": "wan-vae", "path": None}
    config["pretrained"] = str(tmp_path / "wan")
    model = CLIGenModel(config)
    reference = WanTransformer3DModel.from_pretrained(tmp_path / "wan" / "transformer")
    assert all(torch.equal(a, b) for a, b in zip(model.transformer.state_dict().values(),
                                                 reference.state_dict().values(), strict=True))
    assert torch.equal(next(model.tokenizer.vae.parameters()), next(vae.parameters()))
    with pytest.raises(NCError, match="no such directory"):
        CLIGenModel({**config, "pretrained": str(tmp_path / "missing")})


def test_umt5_and_clip_need_transformers_or_say_so(tmp_path):
    try:
        import transformers  # noqa: F401
    except ImportError:
        from neuralcomputer.models.cligen import build_text_encoder

        with pytest.raises(NCError, match="needs the `transformers` package"):
            build_text_encoder({"kind": "umt5", "path": str(tmp_path)})
    else:
        pytest.skip("transformers is installed: the error path does not apply")
