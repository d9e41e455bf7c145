"""GUIWorld: action features, the four injection modes, the context cache, training and rollouts."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from neuralcomputer.config import apply_overrides
from neuralcomputer.data.dataset import read_clip_payload
from neuralcomputer.data.desktop.actions import (
    KEY_INDEX,
    FrameActions,
    parse_actions,
    read_actions,
    step_actions,
)
from neuralcomputer.errors import NCError
from neuralcomputer.models.actions import RAW_FEATURES, features_to_tensors, featurize
from neuralcomputer.models.guiworld import GUIWorldModel
from neuralcomputer.pipelines.guiworld import GUIWorldRollout
from neuralcomputer.train.loop import train
from tests.guiworld_helpers import TINY_GUI, make_desktop_dataset, tiny_gui_config

NCOMP = str(Path(sys.executable).with_name("ncomp"))
MODES = ("external", "contextual", "residual", "internal")


@pytest.fixture(scope="module")
def desktop_ds(tmp_path_factory):
    return make_desktop_dataset(tmp_path_factory.mktemp("gui"))


def _model(injection: str, encoder: str = "meta", seed: int = 0) -> GUIWorldModel:
    cfg = tiny_gui_config([f"injection={injection}", f"encoder={encoder}"])["model"]
    torch.manual_seed(seed)
    return GUIWorldModel({**cfg, "screen": [128, 96]})


def _window(seed: int = 0) -> list[FrameActions]:
    rng = np.random.default_rng(seed)
    out = []
    for f in range(3):
        x, y = (int(v) for v in rng.integers(0, 96, 2))
        out.append(FrameActions(f, f / 15, (x, y), [{"type": "move", "x": x, "y": y}, {"type": "down", "button": 1}],
                                [{"type": "click", "x": x, "y": y, "button": 1, "count": 1},
                                 {"type": "type", "text": f"hi {seed}"}]))
    return out


def _inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(1, 8, 1, 6, 8, generator=g), torch.tensor([700.0]), torch.randn(1, 8, 2, 6, 8, generator=g),
            torch.tensor([30.0]))


# -- actions --------------------------------------------------------------------------------------
def test_featurize_puts_events_in_their_slots():
    frames = [FrameActions(0, 0.0, (0, 0)),
              FrameActions(1, 1 / 15, (127, 95), [{"type": "down", "button": 3}, {"type": "key_down", "key": "Return"},
                                                  {"type": "scroll", "dx": 0, "dy": -5}],
                           [{"type": "key", "keys": ["ctrl", "s"]}, {"type": "drag", "x0": 0, "y0": 0, "x": 127,
                                                                       "y": 95, "button": 1}]),
              FrameActions(2, 2 / 15, (64, 48))]
    f = featurize([frames], 128, 96, max_meta=2)
    raw = f["raw"][0]
    assert raw.shape == (3, RAW_FEATURES) and not raw[0].any()
    assert raw[1, 2] == 1 and raw[2, 2 * 3 + 2] == 1  # right button pressed at 1, still held at 2
    assert raw[1, 9 + KEY_INDEX["Return"]] == 1 and raw[1, -1] == -1.0
    assert f["pointer"][0, 1].tolist() == [1.0, 1.0] and f["pointer"][0, 0].tolist() == [0.0, 0.0]
    assert f["meta_type"][0, 1].tolist() == [6, 3] and f["meta_type"][0, 0].tolist() == [0, 0]  # key, drag
    assert f["meta_text"][1 * 2] == "ctrl+s"
    assert f["meta_xy"][0, 1, 1].tolist() == [1.0, 1.0, 0.0, 0.0]


def test_step_actions_merge_the_interval_and_take_the_pointer_at_its_end():
    frames = _window()
    step = step_actions(frames, 0, 2)
    assert len(step.events) == 4 and len(step.meta) == 4 and step.pointer == frames[2].pointer
    assert step_actions(frames, 0, 0).events == []


def test_malformed_action_lines_are_errors_naming_the_line(tmp_path):
    good = '{"frame": 0, "pointer": [1, 2]}'
    cases = {'{"frame": 0, "pointer": [1, 2]}\n{"frame": 1, "events": [{"type": "jump"}]}': ":2 event 0: expected an event",
             f'{good}\n{{"frame": 5}}': ":2: expected frame 1",
             f'{good}\nnot json': ":2: not a JSON object",
             f'{good}\n{{"meta": [{{"type": "click", "x": 1, "y": "2", "button": 1, "count": 1}}]}}': "needs y as int",
             '{"events": []}': ":1: no pointer position yet"}
    for text, expected in cases.items():
        path = tmp_path / "a.jsonl"
        path.write_text(text)
        with pytest.raises(NCError, match=expected):
            read_actions(path)
    assert parse_actions(['{"events": [{"type": "move", "x": 3, "y": 4}]}', "{}"], "x")[1].pointer == (3, 4)


# -- the model ------------------------------------------------------------------------------------
def test_block_loop_equals_diffusers_forward():
    """Our block loop (with no mask, one timestep, no actions) is Wan's forward, so Wan weights mean the same."""
    model = _model("none")
    target, t, context, _ = _inputs()
    x = torch.cat([model.frame_inputs(context, True), model.frame_inputs(target, False, context[:, :, -1:])], dim=2)
    with torch.no_grad():
        ours = model._run(x, t[:, None].expand(-1, 3), None, slice(0, 3), False, None)
        wan = model.transformer(x, t, model.null_context, return_dict=False)[0]
    torch.testing.assert_close(ours, wan, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("mode", MODES)
def test_fresh_injection_equals_backbone_and_cache_equals_full_pass(mode):
    base, model = _model("none"), _model(mode)
    model.load_state_dict(base.state_dict(), strict=False)  # the backbone's weights, the mode's own at init
    target, t, context, ct = _inputs()
    feats = features_to_tensors(featurize([_window()], 128, 96, 2))
    with torch.no_grad():
        actions = model.encode_actions(feats)
        expected = base(target, t, context, ct, None)
        full = model(target, t, context, ct, actions)
        cached = model.target_pass(target, t, actions, model.context_pass(context, ct, actions))
    assert torch.equal(full, expected)  # zero-initialised: exactly the backbone
    torch.testing.assert_close(cached, full, atol=1e-6, rtol=1e-6)
    # trained a little, the actions change the prediction (the path is live, not dead weight)
    opt = torch.optim.SGD([p for n, p in model.named_parameters() if not n.startswith("transformer")], lr=0.5)
    loss = model(target, t, context, ct, model.encode_actions(feats)).square().mean()
    loss.backward()
    opt.step()
    with torch.no_grad():
        other = features_to_tensors(featurize([_window(seed=1)], 128, 96, 2))
        a = model(target, t, context, ct, model.encode_actions(feats))
        b = model(target, t, context, ct, model.encode_actions(other))
    assert not torch.allclose(a, b)


def test_save_load_round_trip(tmp_path):
    model = _model("residual", encoder="raw")
    model.save_pretrained(tmp_path / "m")
    loaded = GUIWorldModel.from_pretrained(tmp_path / "m")
    target, t, context, ct = _inputs()
    feats = features_to_tensors(featurize([_window()], 128, 96, 2))
    with torch.no_grad():
        assert torch.equal(model.eval()(target, t, context, ct, model.encode_actions(feats)),
                           loaded(target, t, context, ct, loaded.encode_actions(feats)))
    (tmp_path / "m" / "transformer.safetensors").write_bytes(b"garbage")
    with pytest.raises(NCError, match="unreadable weights"):
        GUIWorldModel.from_pretrained(tmp_path / "m")


def test_bad_injection_is_refused():
    with pytest.raises(NCError, match="injection"):
        apply_overrides(tiny_gui_config(), ["injection=sideways"])
    with pytest.raises(NCError, match="fsdp=true is not supported for GUIWorld"):
        apply_overrides(tiny_gui_config(), ["fsdp=true"])


# -- training and rollouts ------------------------------------------------------------------------
@pytest.mark.slow
def test_every_injection_mode_trains_and_rolls_out(desktop_ds, tmp_path):
    tok_run = tmp_path / "first"
    runs = {}
    for mode in MODES:
        extra = [f"injection={mode}", "save_every=3", "val_every=3"]
        if mode != MODES[0]:  # the first run trains the tokenizer; the others reuse it
            extra.append(f"model.tokenizer.path={tok_run / 'tokenizer' / 'model'}")
        else:
            extra.append("tokenizer_steps=20")
        cfg = tiny_gui_config(extra)
        cfg["train"]["steps"] = 3
        runs[mode] = train(cfg, desktop_ds, tok_run if mode == MODES[0] else tmp_path / mode, progress=False)
        metrics = (runs[mode] / "metrics.jsonl").read_text()
        assert '"val/psnr"' in metrics and '"loss"' in metrics
    # the CLI rolls a run out from a PNG and an actions file; same inputs and seed, same bytes
    clip = sorted((desktop_ds / "clips").glob("*.npz"))[0]
    first = read_clip_payload(clip)["frames"][0]
    Image.fromarray(first).save(tmp_path / "first.png")
    actions = clip.with_name(clip.name.replace(".npz", ".actions.jsonl"))
    outs = []
    for n in range(2):
        out = tmp_path / f"roll{n}"
        result = subprocess.run([NCOMP, "rollout", "--model", str(runs["internal"]), "--first-frame",
                                 str(tmp_path / "first.png"), "--actions", str(actions), "--out", str(out)],
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        outs.append(sorted(out.glob("*.png")))
    assert len(outs[0]) == len(read_actions(actions))
    assert [p.read_bytes() for p in outs[0]] == [p.read_bytes() for p in outs[1]]
    frame = np.asarray(Image.open(outs[0][1]))
    assert frame.shape == (48, 64, 3) and frame.std() > 0  # a generated frame, not a blank


def test_rollout_holds_frames_at_the_data_rate(desktop_ds, tmp_path):
    cfg = copy.deepcopy(tiny_gui_config(["frame_stride=2"])["model"])
    torch.manual_seed(0)
    roll = GUIWorldRollout(GUIWorldModel({**cfg, "screen": [128, 96]}))
    clip = sorted((desktop_ds / "clips").glob("*.npz"))[0]
    acts = read_actions(clip.with_name(clip.name.replace(".npz", ".actions.jsonl")))[:7]
    frames, timings = roll.rollout(read_clip_payload(clip)["frames"][0], acts, seed=3)
    assert frames.shape == (7, 48, 64, 3) and timings.frames == 3
    # frame 0 is held until frame 2 (the first generated one), which is held through frame 3, ...
    assert np.array_equal(frames[0], frames[1]) and np.array_equal(frames[2], frames[3])
    assert not np.array_equal(frames[1], frames[2]) and np.array_equal(frames[5], frames[4])
    assert timings.denoise > 0 and timings.decode > 0
    roll.cache = False  # every step over the whole window: the same frames, to float rounding
    uncached, _ = roll.rollout(read_clip_payload(clip)["frames"][0], acts, seed=3)
    assert np.abs(uncached.astype(int) - frames.astype(int)).max() <= 1


@pytest.mark.slow
def test_ablation_command_writes_the_table_and_bench_prints_json(desktop_ds, tmp_path):
    result = subprocess.run([NCOMP, "experiment", "guiworld", "actions", "--data", str(desktop_ds), "--out",
                             str(tmp_path / "abl"), "--steps", "2", "--eval-split", "val", "--eval-episodes", "1",
                             "--eval-frames", "5", *[o for o in TINY_GUI if not o.startswith(("val_", "log_"))],
                             "tokenizer_steps=10"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    table = json.loads((tmp_path / "abl" / "actions.json").read_text())
    assert set(table["rows"]) == {"raw", "meta"}
    for name, row in table["rows"].items():
        assert row["paper"]["ssim"] in (0.847, 0.863) and 0 < row["ssim"] <= 1 and row["fvd"] is None
        config = json.loads((tmp_path / "abl" / "runs" / name / "config.json").read_text())
        assert config["model"]["actions"]["encoder"] == name and config["train"]["steps"] == 2
    assert "| raw |" in (tmp_path / "abl" / "actions.md").read_text()
    assert 0 < table["baselines"]["copy previous frame"]["ssim"] <= 1  # the trivial predictors beside the models
    result = subprocess.run([NCOMP, "eval", "desktop", "--model", str(tmp_path / "abl" / "runs" / "meta"), "--data",
                             str(desktop_ds), "--out", str(tmp_path / "rep"), "--split", "val", "--episodes", "1",
                             "--frames", "5"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    headline = json.loads(result.stdout)
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert headline["ssim"] == report["rows"]["meta"]["ssim"] and 0 < headline["ssim"] <= 1
    assert "| *baseline: copy first frame* |" in (tmp_path / "rep" / "report.md").read_text()
    result = subprocess.run([NCOMP, "bench", "rollout", "--frames", "3", "--threads", "1", *TINY_GUI[:10]],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    figures = {f["figure"]: f for f in map(json.loads, result.stdout.splitlines())}
    assert figures["rollout_frames_per_s"]["value"] > 0
    assert set(figures["rollout_s_per_frame_split"]["value"]) == {"context_pass", "denoiser_steps", "decoder"}
