"""The NeuralComputer runtime: reset/step for terminal and desktop models, determinism, state on disk."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from neuralcomputer.data.desktop.actions import FrameActions
from neuralcomputer.data.terminal.recorder import shell_prompt
from neuralcomputer.demo import BUNDLED_DIR
from neuralcomputer.errors import NCError
from neuralcomputer.eval.grid_ocr import GridOCR
from neuralcomputer.pipelines.guiworld import GUIWorldRollout
from neuralcomputer.runtime.computer import MAX_COMMAND_BYTES, NeuralComputer
from tests.runtime_helpers import tiny_desktop_model, tiny_terminal_model


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {"terminal": tiny_terminal_model(root / "terminal"), "desktop": tiny_desktop_model(root / "desktop")}


def _desktop_first() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8)


def test_terminal_reset_draws_a_prompt_at_the_models_grid(models):
    c = NeuralComputer.load(models["terminal"])
    frame = c.reset()
    assert c.kind == "terminal" and frame.shape == (136, 320, 3) and c.grid == (40, 8)
    assert GridOCR(cols=40, rows=8).read_lines(frame)[0] == shell_prompt().strip()


def test_terminal_step_renders_a_clip_and_records_it(models):
    c = NeuralComputer.load(models["terminal"], seed=3)
    first = c.reset()
    seen: list[np.ndarray] = []
    result = c.step({"type": "command", "text": "ls -la"}, callback=seen.append)
    pipe = c.backend
    assert result.frames.shape == ((pipe.num_frames - 1) * pipe.stride, 136, 320, 3)
    assert len(seen) == len(result.frames) and (c.frame == result.frames[-1]).all()
    assert not (c.frame == first).all()  # an untrained model still changes the screen
    record = result.record
    assert record["step"] == 0 and record["caption"] == "The user types `ls -la`." and record["engine"] is None
    assert record["timings"]["total_s"] >= record["timings"]["sample_s"] > 0
    json.dumps(c.history)  # records are JSON-able


def test_same_seed_same_frames_other_seed_other_frames(models):
    runs = []
    for seed in (0, 0, 1):
        c = NeuralComputer.load(models["terminal"], seed=seed)
        c.reset()
        runs.append(np.concatenate([c.step({"type": "command", "text": t}).frames for t in ("ls", "pwd")]))
    assert (runs[0] == runs[1]).all()
    assert not (runs[0] == runs[2]).all()


@pytest.mark.parametrize("action, message", [
    ({"type": "click", "x": 1, "y": 1}, "a terminal model takes"),
    ({"type": "command", "text": ""}, "non-blank text"),
    ({"type": "command", "text": "x" * 5000}, "at most 1000"),
    ({"type": "command", "text": "ls\nrm"}, "one line"),
    ({"type": "command", "text": 5}, "non-blank text"),
    ("ls", "expected a JSON object"),
])
def test_terminal_rejects_malformed_actions_and_changes_nothing(models, action, message):
    c = NeuralComputer.load(models["terminal"])
    frame = c.reset().copy()
    with pytest.raises(NCError, match=message):
        c.step(action)
    assert c.history == [] and (c.frame == frame).all()


def test_step_before_reset_and_bad_settings_are_clear_errors(models):
    c = NeuralComputer.load(models["terminal"])
    with pytest.raises(NCError, match="call reset"):
        c.step({"type": "command", "text": "ls"})
    with pytest.raises(NCError, match="steps: expected an integer"):
        c.steps = 0
    c.steps = 3
    assert c.backend.steps == 3
    with pytest.raises(NCError, match="first frame is"):
        c.reset(np.zeros((10, 10, 3), np.uint8))


@pytest.mark.parametrize("stride", [1, 2])
def test_desktop_steps_match_an_offline_rollout_of_the_same_actions(models, stride, tmp_path):
    """The runtime's frame-by-frame stepping is the rollout API, frame for frame, bit for bit."""
    model = models["desktop"] if stride == 1 else tiny_desktop_model(tmp_path / "m", stride=stride)
    rng = np.random.default_rng(1)
    points = [(int(x), int(y)) for x, y in rng.integers(0, 96, (11, 2))]  # past the window: old records go
    records = [FrameActions(i, i / 15, points[i], [{"type": "move", "x": points[i + 1][0], "y": points[i + 1][1]}]
                            if i + 1 < len(points) else []) for i in range(len(points))]
    records[2].events.append({"type": "down", "button": 1})
    records[2].meta.append({"type": "click", "x": points[3][0], "y": points[3][1], "button": 1, "count": 1})
    records = records[: 1 + (len(records) - 1) // stride * stride]  # whole steps only
    offline, _ = GUIWorldRollout.load(model).rollout(_desktop_first(), records, seed=5)

    c = NeuralComputer.load(model, seed=5)
    c.reset(_desktop_first(), pointer=points[0])  # the offline log's first pointer
    live = [c.frame[None]]
    for i in range(0, len(records) - 1, stride):
        # one runtime step spans `stride` frames: the step's input, then the pointer it leaves
        events = [e for r in records[i:i + stride] for e in r.events]
        meta = [m for r in records[i:i + stride] for m in r.meta]
        live.append(c.step({"type": "frame", "events": events, "meta": meta,
                            "pointer": list(records[i + stride].pointer)}).frames)
    assert (np.concatenate(live) == offline).all()


def test_desktop_meta_actions_become_events_and_move_the_pointer(models):
    c = NeuralComputer.load(models["desktop"])
    c.reset(_desktop_first())
    assert c.screen == (128, 96) and c.frame.shape == (48, 64, 3)
    r = c.step({"type": "click", "x": 500, "y": 20, "button": 3, "count": 2})
    assert r.record["pointer"] == [127, 20]  # clamped to the screen
    assert [e["type"] for e in c._records[0].events] == ["move", "down", "up", "down", "up"]
    c.step({"type": "key", "keys": ["ctrl", "s"]})
    assert [e["type"] for e in c._records[1].events] == ["key_down", "key_down", "key_up", "key_up"]
    for _ in range(6):
        c.step({"type": "frame", "events": []})
    assert len(c._latents) <= c.backend.model.window  # old context is dropped: memory stays flat
    state = c.state
    assert state["frame"] == 8 and state["context_frames"] == sorted(c.latents) and max(c.latents) == 8
    assert state["latent_shape"] == list(c.latents[8].shape) and json.dumps(state)
    with pytest.raises(NCError, match="type one of move, click"):
        c.step({"type": "explode"})
    with pytest.raises(NCError, match="needs x as int"):
        c.step({"type": "click", "x": "left", "y": 3, "button": 1, "count": 1})
    with pytest.raises(NCError, match="unknown fields"):
        c.step({"type": "frame", "evil": 1})
    assert len(c.history) == 8
    with pytest.raises(NCError, match="needs a terminal model"):
        c.hybrid = True


@pytest.mark.parametrize("kind", ["terminal", "desktop"])
def test_saved_state_continues_with_identical_frames(models, kind, tmp_path):
    action = {"type": "command", "text": "echo hi"} if kind == "terminal" else {"type": "move", "x": 40, "y": 30}
    c = NeuralComputer.load(models[kind], seed=7)
    c.reset(None if kind == "terminal" else _desktop_first())
    c.step(action)
    c.save(tmp_path / "state")
    after = [c.step(action).frames for _ in range(2)]

    d = NeuralComputer.load(models[kind], seed=123)  # the state's seed wins
    d.restore(tmp_path / "state")
    assert d.seed == 7 and len(d.history) == 1
    assert all((a == b).all() for a, b in zip(after, [d.step(action).frames for _ in range(2)], strict=True))
    assert not list(tmp_path.glob(".*tmp"))  # nothing half-written left behind


def test_restore_refuses_another_model_and_corrupt_state(models, tmp_path):
    c = NeuralComputer.load(models["terminal"])
    c.reset()
    c.save(tmp_path / "state")
    d = NeuralComputer.load(models["desktop"])
    with pytest.raises(NCError, match="different model"):
        d.restore(tmp_path / "state")
    (tmp_path / "state" / "state.json").write_text("{broken")
    with pytest.raises(NCError, match="corrupt"):
        c.restore(tmp_path / "state")
    with pytest.raises(NCError, match="not a saved state"):
        c.restore(tmp_path / "nothing")


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")
def test_hybrid_mode_runs_the_command_for_real_and_captions_its_screen(models, tmp_path):
    c = NeuralComputer.load(models["terminal"], hybrid=True)
    c.reset()
    record = c.step({"type": "command", "text": "echo neural-$((6*7))"}).record
    assert record["caption"].startswith("The user types `echo neural-$((6*7))`. From line 1 the screen reads:\n")
    assert "\nneural-42\n" in record["caption"]
    assert record["engine"]["name"] == "shell" and record["engine"]["exit_code"] == 0
    assert "neural-42" in record["engine"]["screen_text"]
    c.step({"type": "command", "text": "mkdir d && cd d && touch f"})
    assert c.step({"type": "command", "text": "pwd; ls"}).record["engine"]["screen_text"].count("/d") >= 1
    c.hybrid = False  # the sandbox goes away; native captions again
    assert c.engine is None
    assert c.step({"type": "command", "text": "ls"}).record["caption"] == "The user types `ls`."


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")
def test_hybrid_captions_fit_the_models_byte_limit_checked_before_the_command_runs(tmp_path):
    c = NeuralComputer.load(tiny_terminal_model(tmp_path / "m", extra=["max_len=400"]), hybrid=True)
    c.reset()
    # A command whose caption cannot fit is refused before it runs: no side effect, no step.
    with pytest.raises(NCError, match="this model's captions") as refused:
        c.step({"type": "command", "text": "touch made-here; echo " + "€" * 110})
    assert "\n" not in str(refused.value) and c.history == []
    assert "made-here" not in c.step({"type": "command", "text": "ls -a"}).record["engine"]["screen_text"]
    # A screen full of 3-byte characters: the caption quotes what fits (cut as training captions are).
    record = c.step({"type": "command", "text": "printf '€%.0s' $(seq 1 2000)"}).record
    assert record["engine"]["exit_code"] == 0 and "€" * 40 in record["engine"]["screen_text"]
    assert 300 < len(record["caption"].encode()) <= 400 and record["caption"].endswith(" ...")
    # Commands are limited in bytes, as the model's captions are: 1000 € (3000 bytes) is one clear error.
    with pytest.raises(NCError, match=f"at most {MAX_COMMAND_BYTES} bytes"):
        c.step({"type": "command", "text": "€" * MAX_COMMAND_BYTES})
    plain = NeuralComputer.load(tiny_terminal_model(tmp_path / "p", extra=["max_len=100"]))
    plain.reset()
    with pytest.raises(NCError, match="this model's captions"):
        plain.step({"type": "command", "text": "echo " + "x" * 90})


def _absolute_paths(value, where="") -> list[str]:
    """Every string in a JSON value that is an absolute path, with where it is."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _absolute_paths(v, f"{where}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _absolute_paths(v, f"{where}[{i}]")]
    return [f"{where}={value}"] if isinstance(value, str) and value.startswith("/") else []


def test_shipped_model_folders_hold_no_path_of_the_machine_that_made_them():
    shipped = sorted(BUNDLED_DIR.glob("*/config.json"))
    if not shipped:
        pytest.skip("no bundled models")
    for config in shipped:
        assert _absolute_paths(json.loads(config.read_text())) == [], config


@pytest.mark.parametrize("kind", ["terminal", "desktop"])
def test_model_folders_are_relocatable_and_old_absolute_paths_still_load(models, kind, tmp_path):
    # A trained model's config names the tokenizer it was trained with (an absolute path of that machine);
    # its folder holds the tokenizer's weights, so the folder it writes names no path at all.
    loaded = NeuralComputer.load(models[kind]).backend.model
    loaded.config["tokenizer"]["path"] = "/machine/that/trained/it/tokenizer/model"
    loaded.save_pretrained(tmp_path / "saved")
    assert _absolute_paths(json.loads((tmp_path / "saved" / "config.json").read_text())) == []
    moved = shutil.move(tmp_path / "saved", tmp_path / "elsewhere" / "model")
    first = _desktop_first() if kind == "desktop" else None
    action = {"type": "click", "x": 9, "y": 9, "button": 1, "count": 1} if kind == "desktop" else \
        {"type": "command", "text": "ls"}
    expected = NeuralComputer.load(models[kind])
    expected.reset(first)
    for folder in (moved, models[kind]):  # an old config, its path pointing nowhere, loads from its folder too
        if folder == models[kind]:
            folder = Path(shutil.copytree(folder, tmp_path / "old"))
            config = json.loads((folder / "config.json").read_text())
            config["model"]["tokenizer"]["path"] = "/nowhere/tokenizer/model"
            (folder / "config.json").write_text(json.dumps(config))
        c = NeuralComputer.load(folder)
        c.reset(first)
        assert (c.step(action).frames == expected.step(action).frames).all()
        expected.reset(first)


def test_a_failed_desktop_step_changes_nothing(models, monkeypatch):
    def run(fail: bool) -> list[np.ndarray]:
        c = NeuralComputer.load(models["desktop"], seed=2)
        c.reset(_desktop_first())
        frames = [c.step({"type": "click", "x": 20, "y": 30, "button": 1, "count": 1}).frames]
        if fail:
            real = c.backend.generate_frame
            monkeypatch.setattr(c.backend, "generate_frame", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom")))
            with pytest.raises(RuntimeError, match="boom"):
                c.step({"type": "move", "x": 90, "y": 10})
            monkeypatch.setattr(c.backend, "generate_frame", real)
            assert len(c.history) == 1 and c.state["frame"] == 1
        frames += [c.step({"type": "key", "keys": ["Return"]}).frames, c.step({"type": "move", "x": 5, "y": 5}).frames]
        return frames

    assert all((a == b).all() for a, b in zip(run(True), run(False), strict=True))


@pytest.mark.parametrize("action, message", [
    ({"type": "scroll", "x": 1, "y": 1, "dx": 0, "dy": 10**9}, "dy is limited to 20"),
    ({"type": "click", "x": 1, "y": 1, "button": 1, "count": 10**6}, "count is limited to 3"),
    ({"type": "click", "x": 1, "y": 1, "button": 1, "count": 0}, "at least 1"),
    ({"type": "type", "text": "a" * 5000}, "text is limited to 1000"),
])
def test_desktop_actions_that_would_expand_without_bound_are_refused(models, action, message):
    c = NeuralComputer.load(models["desktop"])
    c.reset(_desktop_first())
    with pytest.raises(NCError, match=message):
        c.step(action)
    assert c.history == []
