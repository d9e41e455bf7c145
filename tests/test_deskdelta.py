"""DeskDelta (the CPU desktop model), cursor-free desktop clips drawn at read, and the new desktop metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from neuralcomputer.config import preset_config
from neuralcomputer.data.dataset import write_clip_payload
from neuralcomputer.data.desktop.actions import FrameActions
from neuralcomputer.data.desktop.cursor import composite_cursor, cursor_sprite
from neuralcomputer.data.desktop.episode import READ_CURSOR_SCALE, read_desktop_clip
from neuralcomputer.eval.gui import changed_box, changed_psnr, cursor_hit_rate, locate_cursor
from neuralcomputer.models.deskdelta import DeskDeltaModel, action_inputs
from neuralcomputer.pipelines.deskdelta import DeskDeltaRollout
from neuralcomputer.pipelines.load import load_pipeline
from neuralcomputer.runtime.computer import NeuralComputer
from tests.runtime_helpers import replay_live


def _screens(rng: np.random.Generator, n: int, h: int = 384, w: int = 512) -> np.ndarray:
    """``n`` distinct flat-ish desktop screens with a few windows ``(n, h, w, 3)`` uint8."""
    out = np.empty((n, h, w, 3), np.uint8)
    for i in range(n):
        out[i] = rng.integers(40, 90, 3)
        for _ in range(3):
            y, x = rng.integers(0, h - 60), rng.integers(0, w - 80)
            out[i, y:y + 60, x:x + 80] = rng.integers(120, 250, 3)
    return out


def _clip(path: Path, screens: np.ndarray, index: np.ndarray, pointer: np.ndarray, drawn: bool) -> None:
    cursor = np.concatenate([pointer, np.ones((len(index), 1))], axis=1).astype(np.int16)
    extra = {"pointer": pointer.astype(np.int16)}
    if not drawn:
        extra["cursor_drawn"] = np.zeros(len(index), np.uint8)
    write_clip_payload(path, screens, index, [""] * len(screens), cursor, extra=extra)


def test_cursor_free_clips_get_a_crisp_cursor_at_the_read_size(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    screens = _screens(rng, 2)
    index = np.array([0, 0, 1, 1, 1], np.int32)
    pointer = np.array([[100, 80], [104, 84], [300, 200], [301, 201], [480, 360]])
    _clip(tmp_path / "c.npz", screens, index, pointer, drawn=False)
    clip = read_desktop_clip(tmp_path / "c.npz", (192, 256))
    assert not clip.cursor_drawn and clip.cursor_scale == READ_CURSOR_SCALE and clip.framebuffers.shape == (2, 192, 256, 3)
    np.testing.assert_allclose(clip.pointer, pointer / 2)
    frames = clip.frames()
    assert frames.shape == (5, 192, 256, 3)
    # the instrument finds every arrow where the log says, at the model's size
    assert cursor_hit_rate(frames, clip.pointer, clip.sprite, radii=(2,))[2] == 1.0
    # the bare framebuffers carry no arrow
    assert locate_cursor(clip.frames([2], cursor=False)[0], clip.sprite) is None


def test_clips_recorded_with_the_cursor_drawn_in_read_as_before(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    screens = _screens(rng, 1)
    sprite = cursor_sprite()
    drawn = composite_cursor(screens[0], 200, 150, sprite)[None]
    _clip(tmp_path / "old.npz", drawn, np.zeros(3, np.int32), np.array([[200, 150]] * 3), drawn=True)
    clip = read_desktop_clip(tmp_path / "old.npz")
    assert clip.cursor_drawn and clip.cursor_scale == 1.0
    assert (clip.frames() == drawn[0]).all()
    assert read_desktop_clip(tmp_path / "old.npz", (192, 256)).cursor_scale == 0.5


def test_changed_psnr_scores_only_the_pixels_that_change() -> None:
    prev = np.zeros((1, 16, 16, 3), np.uint8)
    ref = prev.copy()
    ref[0, 4:8, 4:8] = 255
    assert changed_psnr(prev, ref, prev) == 0.0  # copying the previous frame gets every changed pixel wrong
    assert changed_psnr(ref, ref, prev) == float("inf")
    half = ref.copy()
    half[0, 4:8, 4:6] = 0  # half the changed pixels right: MSE 0.5 -> 3.01 dB
    assert changed_psnr(half, ref, prev) == pytest.approx(10 * np.log10(2))
    assert changed_psnr(prev, prev, prev) is None
    rows, cols = changed_box(prev[0], ref[0], margin=0, min_side=4)
    assert (rows, cols) == (slice(4, 8), slice(4, 8))
    rows, cols = changed_box(prev[0], ref[0], margin=0, min_side=16)
    assert rows.stop - rows.start == 16 and cols.stop - cols.start == 16


def _records(points: list[tuple[int, int]], click_at: int | None = None) -> list[FrameActions]:
    recs = [FrameActions(i, i / 15, p) for i, p in enumerate(points)]
    if click_at is not None:
        recs[click_at].events += [{"type": "down", "button": 1}, {"type": "up", "button": 1}]
        recs[click_at].meta.append({"type": "click", "x": points[click_at][0], "y": points[click_at][1],
                                    "button": 1, "count": 1})
    return recs


def test_action_maps_put_the_pointer_and_the_click_where_they_happen() -> None:
    recs = _records([(0, 0), (511, 383), (256, 192)], click_at=1)
    from neuralcomputer.models.deskdelta import step_window

    maps, vectors = action_inputs([step_window(recs, 2, 2)], (512, 384), (48, 64))
    assert maps.shape == (1, 6, 48, 64) and vectors.shape[0] == 1
    # step 1 (frame 1 -> 2): pointer splatted around the centre, weights sum to 1; the click of record 1
    # belongs to the step that leads to frame 2, at frame 2's pointer
    assert maps[0, 3].sum() == pytest.approx(1.0) and maps[0, 4].sum() == pytest.approx(1.0)
    y, x = np.unravel_index(maps[0, 3].argmax(), (48, 64))
    assert abs(y - 23.5) <= 1 and abs(x - 31.5) <= 1
    # step 0 (frame 0 -> 1): pointer at the bottom-right corner, no button
    assert maps[0, 0, 47, 63] == pytest.approx(1.0) and maps[0, 1].sum() == 0


def test_meta_actions_and_pointer_numbers_replace_what_the_maps_carry() -> None:
    """actions=meta splats the click's target (here where the pointer went after it) and codes its type;
    cursor=position/fourier gives no maps and the pointer as numbers, each in its own columns."""
    from neuralcomputer.models.actions import META_TYPES
    from neuralcomputer.models.deskdelta import OCTAVES, step_window, vector_features

    recs = _records([(0, 0), (100, 300), (400, 50)], click_at=1)
    recs[1].meta[0].update(x=500, y=380)  # the click's target differs from the pointer read back
    steps = [step_window(recs, 2, 2)]
    maps, vec = action_inputs(steps, (512, 384), (48, 64), actions="meta")
    assert maps.shape == (1, 6, 48, 64) and vec.shape == (1, 2 * vector_features("meta"))
    y, x = np.unravel_index(maps[0, 4].argmax(), (48, 64))  # step 1's target map: at (500, 380)
    assert (y, x) in ((46, 62), (46, 63), (47, 62), (47, 63)) and maps[0, 1].sum() == 0 and maps[0, 5].sum() == 0
    per_step = vec.reshape(2, -1)
    assert per_step[1, META_TYPES.index("click")] == 1 and per_step[0, :len(META_TYPES)].sum() == 0
    raw_maps, raw_vec = action_inputs(steps, (512, 384), (48, 64))
    for cursor, extra in (("position", 2), ("fourier", 4 * OCTAVES)):
        maps, vec = action_inputs(steps, (512, 384), (48, 64), cursor=cursor)
        assert maps.shape == (1, 0, 48, 64) and vec.shape == (1, 2 * vector_features("raw", cursor))
        per_step = vec.reshape(2, -1)
        assert (per_step[:, :-extra] == raw_vec.reshape(2, -1)).all()
        if cursor == "position":
            assert per_step[1, -2:] == pytest.approx([400 / 511, 50 / 383])


def test_every_injection_mode_reads_the_action_vector_and_starts_as_copy() -> None:
    """The same maps, two action vectors: once the zero-initialised paths are woken, every mode's output
    depends on the vector; untrained, every mode copies the previous framebuffer."""
    from neuralcomputer.models.deskdelta import INJECTIONS, vector_features

    frames = torch.rand(1, 2, 3, 96, 128)
    maps = torch.zeros(1, 3 * 8, 24, 32)
    quiet, busy = torch.zeros(1, 8 * vector_features()), torch.ones(1, 8 * vector_features())
    for mode in INJECTIONS:
        torch.manual_seed(0)
        model = DeskDeltaModel({**_tiny_config(), "injection": mode}).eval()
        with torch.no_grad():
            logits, colour = model(frames, maps, busy)
            assert (DeskDeltaModel.combine(frames[:, -1], logits, colour, hard=True) == frames[:, -1]).all(), mode
            for param in model.parameters():
                param.add_(torch.randn_like(param) * 0.05)
            a, b = model(frames, maps, quiet)[1], model(frames, maps, busy)[1]
        assert (a - b).abs().max() > 1e-3, mode


def test_a_model_that_draws_the_cursor_reads_and_predicts_frames_with_the_arrow(tmp_path: Path) -> None:
    """cursor=position: training examples carry the arrow at each frame's pointer, and the rollout starts
    from the screenshot with the arrow drawn in and composites nothing (untrained, it copies: the arrow
    stays where frame 0 had it)."""
    from neuralcomputer.train.deskdelta import example

    torch.manual_seed(0)
    model = DeskDeltaModel({**_tiny_config(), "cursor": "position"})
    screens = _screens(np.random.default_rng(6), 2, 96, 128)
    points = [(20, 20), (100, 60), (200, 150), (240, 40)]
    ep = {"framebuffers": screens, "index": np.array([0, 0, 1, 1]), "actions": _records(points)}
    ctx, target, _ = example(ep, 3, model, (256, 192))
    sprite = cursor_sprite(READ_CURSOR_SCALE)
    assert (target == composite_cursor(screens[1], 120, 20, sprite)).all()
    assert (ctx[-1] == composite_cursor(screens[1], 100, 75, sprite)).all()
    model.save_pretrained(tmp_path / "m")
    frames, _ = load_pipeline(tmp_path / "m").rollout(screens[0], _records(points))
    first = composite_cursor(screens[0], 10, 10, sprite)
    assert all((f == first).all() for f in frames)


def _tiny_config() -> dict:
    cfg = preset_config("guiworld-delta")["model"]
    cfg.update(height=96, width=128, screen=[256, 192], memory=0)
    cfg["net"] = {"channels": [16, 16, 16], "cond_dim": 16, "blocks": 1, "heads": 2}
    return cfg


def test_untrained_deskdelta_is_copy_previous_framebuffer_with_the_arrow(tmp_path: Path) -> None:
    torch.manual_seed(0)
    DeskDeltaModel(_tiny_config()).save_pretrained(tmp_path / "m")
    roll = load_pipeline(tmp_path / "m")
    assert isinstance(roll, DeskDeltaRollout) and roll.model.window == 9
    first = _screens(np.random.default_rng(2), 1, 96, 128)[0]
    points = [(10, 10), (40, 30), (200, 150), (255, 191)]
    frames, _ = roll.rollout(first, _records(points, click_at=1))
    sprite = cursor_sprite(READ_CURSOR_SCALE)
    for t, (x, y) in enumerate(points):
        assert (frames[t] == composite_cursor(first, x / 2, y / 2, sprite)).all()
    # the runtime steps the same model frame by frame, bit for bit
    c = NeuralComputer.load(tmp_path / "m")
    c.reset(first, pointer=points[0])
    live = [c.frame]
    for i, p in enumerate(points[1:]):
        r = c.step({"type": "frame", "events": [], "meta": [], "pointer": list(p)}) if i != 0 else \
            c.step({"type": "frame", "events": [{"type": "down", "button": 1}, {"type": "up", "button": 1}],
                    "meta": [], "pointer": list(p)})
        live.append(r.frames[-1])
    assert all((a == b).all() for a, b in zip(live, frames, strict=True))


@pytest.mark.slow
def test_deskdelta_learns_what_a_click_opens(tmp_path: Path) -> None:
    """Overfit a toy desktop: a click on the button (top-left) opens a 'menu' under it on the next frame.
    After training the model draws the menu after a click and leaves the screen alone after a move."""
    from neuralcomputer.models.deskdelta import step_window

    torch.manual_seed(0)
    cfg = _tiny_config()
    model = DeskDeltaModel(cfg)
    closed = np.full((96, 128, 3), 60, np.uint8)
    closed[:8, :24] = 200  # the button
    opened = closed.copy()
    opened[8:48, :40] = 230  # the menu
    rng = np.random.default_rng(0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)

    def example(click: bool) -> tuple[torch.Tensor, np.ndarray, np.ndarray, np.ndarray]:
        p = (int(rng.integers(0, 40)), int(rng.integers(0, 14))) if click else \
            (int(rng.integers(0, 256)), int(rng.integers(0, 192)))
        recs = _records([p, p, p], click_at=1 if click else None)
        maps, vec = action_inputs([step_window(recs, 2, cfg["history"])], (256, 192), model.grid)
        target = opened if click else closed
        frames = torch.from_numpy(np.stack([closed, closed])).float().div(255).permute(0, 3, 1, 2)
        return frames, maps[0], vec[0], target

    for _ in range(250):
        batch = [example(bool(i % 2)) for i in range(8)]
        frames = torch.stack([b[0] for b in batch])
        maps = torch.from_numpy(np.stack([b[1] for b in batch]))
        vec = torch.from_numpy(np.stack([b[2] for b in batch]))
        target = torch.from_numpy(np.stack([b[3] for b in batch])).float().div(255).permute(0, 3, 1, 2)
        logits, colour = model(frames, maps, vec)
        prev = frames[:, -1]
        changed = ((target - prev).abs().amax(1, keepdim=True) > 0).float()
        loss = (torch.nn.functional.binary_cross_entropy_with_logits(logits, changed)
                + ((colour - target).abs() * changed).mean() + (model.combine(prev, logits, colour, False) - target).abs().mean())
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        for click, target in ((True, opened), (False, closed)):
            frames, maps, vec, _ = example(click)
            logits, colour = model(frames[None], torch.from_numpy(maps[None]), torch.from_numpy(vec[None]))
            out = model.combine(frames[None, -1], logits, colour, hard=True)[0]
            out = (out.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            err = np.abs(out.astype(int) - target.astype(int)).mean()
            copy_err = np.abs(closed.astype(int) - target.astype(int)).mean()  # 22 after a click, 0 after a move
            assert err < 0.15 * copy_err if click else err < 1.0, (click, err, copy_err)


def test_the_screen_cursor_view_is_what_clips_stored_before(tmp_path: Path) -> None:
    """GUIWorld DiT models were trained on the arrow drawn at screen size and shrunk with the frame;
    cursor="screen" gives exactly that view of a cursor-free clip."""
    from neuralcomputer.data.torch_dataset import resize_frames

    rng = np.random.default_rng(3)
    screens = _screens(rng, 2)
    index = np.array([0, 0, 1], np.int32)
    pointer = np.array([[100, 80], [140, 90], [300, 200]])
    _clip(tmp_path / "c.npz", screens, index, pointer, drawn=False)
    clip = read_desktop_clip(tmp_path / "c.npz", (192, 256), cursor="screen")
    old = np.stack([composite_cursor(screens[b], x, y, cursor_sprite()) for b, (x, y) in zip(index, pointer, strict=True)])
    assert clip.cursor_drawn and clip.cursor_scale == 0.5
    assert (clip.frames() == resize_frames(old, 192, 256)).all()


TINY_DELTA = ["height=48", "width=64", "screen=[128, 96]", "channels=[16, 16, 16]", "cond_dim=16", "heads=2",
              "batch_size=4", "threads=1", "log_every=1", "val_every=1000", "save_every=1000", "warmup_steps=0"]


def test_train_score_and_serve_a_deskdelta_on_a_synthetic_desktop(tmp_path: Path) -> None:
    """The whole path on cursor-free data: train (and resume from the frame cache), the targets report
    with every metric and its baselines, and a runtime session of the exported model."""
    from neuralcomputer.config import apply_overrides
    from neuralcomputer.experiments.desktop_targets import targets_markdown, targets_report
    from neuralcomputer.train.loop import train
    from tests.guiworld_helpers import make_desktop_dataset

    ds = make_desktop_dataset(tmp_path, episodes=3, frames=20, cursor_free=True)
    cfg = apply_overrides(preset_config("guiworld-delta"), [*TINY_DELTA, "steps=3"])
    run = train(cfg, ds, tmp_path / "run", progress=False)
    assert (ds / ".deskdelta-cache" / "48x64").is_dir()  # frames decoded once, shared by later runs
    result = targets_report(run, ds, tmp_path / "report", split="all", episodes=3, long_frames=16, short_frames=8)
    m = result["metrics"]
    assert m["instrument_2px"]["mean"] >= 0.9  # the arrow read at 64x48 is found where the log says
    for key in ("onestep_psnr", "copyprev_psnr", "compositor_psnr", "onestep_changed_psnr", "rollout31_ssim",
                "copyfirst150_ssim", "rollout_cursor_hit_5px"):
        assert m[key]["mean"] is not None and m[key]["n"] == 3, key
    assert m["rollout_cursor_hit_5px"]["mean"] >= 0.9  # the compositor draws it where the pointer is
    # a click here toggles the window every 4 frames, so 15 frames later it is back as it was: no case
    assert result["action_effect"]["n"] == 0 and (tmp_path / "report" / "targets.json").is_file()
    assert "| one step changed_psnr (dB) |" in targets_markdown(result)
    # the DiT's report (ncomp eval desktop, the cards) scores it too, from cursor-free starts
    from neuralcomputer.experiments.guiworld import desktop_report

    row = next(iter(desktop_report(run, ds, tmp_path / "dit-report", split="all", episodes=2, frames=8)["rows"].values()))
    assert row["tf_psnr"] is not None and row["cursor_hit"]["5"] >= 0.9
    c = NeuralComputer.load(run)
    first = c.reset(np.full((96, 128, 3), 90, np.uint8), pointer=(64, 48))
    assert c.kind == "desktop" and first.shape == (48, 64, 3)
    assert locate_cursor(first, cursor_sprite(READ_CURSOR_SCALE)) is not None
    assert c.step({"type": "click", "x": 10, "y": 10, "button": 1, "count": 1}).frames.shape[1:] == (48, 64, 3)


@pytest.mark.slow
def test_levers_table_trains_each_variant_at_each_seed_and_pairs_it_with_full(tmp_path: Path) -> None:
    from neuralcomputer.experiments.desktop_levers import run_levers
    from tests.guiworld_helpers import make_desktop_dataset

    ds = make_desktop_dataset(tmp_path, episodes=3, frames=20, cursor_free=True)
    out = tmp_path / "levers"
    variants = ["no copy prior", "cursor drawn, position", "memory alone (bundled design)"]
    result = run_levers(ds, ds, out, steps=2, seeds=[0, 1], overrides=[*TINY_DELTA, "mode=off"], split="all",
                        episodes=2, frames=16, variants=variants)
    assert set(result["rows"]) == {"full", *variants}
    # the memory row recalls beside a copy of the full network; the full run itself stays a network
    recall = out / "memory-alone-(bundled-design)" / "seed-0" / "model"
    assert (recall / "memory.npz").is_file() and not list((out / "full" / "seed-0" / "run").rglob("memory.npz"))
    assert load_pipeline(recall).recall == "alone"
    # who draws the cursor: the runtime's compositor always hits; a 2-step network that must draw it
    # itself copies the first frame's arrow and misses wherever the pointer moved
    hit = lambda name: result["rows"][name]["rollout_cursor_hit_5px"]["mean"]  # noqa: E731
    assert hit("full") == 1.0 and hit("cursor drawn, position") < 1.0
    row = result["rows"]["no copy prior"]["onestep_psnr"]
    assert row["n"] == 4 and row["diff_vs_full"] is not None and len(row["diff_ci95"]) == 2
    assert result["rows"]["full"]["onestep_psnr"]["diff_vs_full"] is None
    assert "| no copy prior |" in (out / "levers.md").read_text()
    # an interrupted table resumes: nothing is trained or scored again
    stamp = (out / "full" / "seed-0" / "run" / "done.json").stat().st_mtime_ns
    again = run_levers(ds, ds, out, steps=2, seeds=[0, 1], overrides=[*TINY_DELTA, "mode=off"], split="all",
                       episodes=2, frames=16, variants=variants)
    assert again["rows"] == result["rows"]
    assert (out / "full" / "seed-0" / "run" / "done.json").stat().st_mtime_ns == stamp
    # without mode=off training exports a memory beside each run; its rows still score the network alone
    plain = run_levers(ds, ds, tmp_path / "plain", steps=2, seeds=[0, 1], overrides=TINY_DELTA, split="all",
                       episodes=2, frames=16, variants=["no copy prior"])
    assert list((tmp_path / "plain" / "full" / "seed-0" / "run").rglob("memory.npz"))
    assert plain["rows"]["full"] == result["rows"]["full"]


def test_a_runtime_session_with_memory_equals_the_offline_rollout(tmp_path: Path) -> None:
    """With a memory frame the step reads far back: the runtime must keep it (its window) and give the
    offline rollout's frames bit for bit; random weights with an open-ish gate so frames really change."""
    from neuralcomputer.models.deskdelta import context_ids

    assert context_ids(10, 2, memory=5) == [5, 8, 9] and context_ids(1, 2, memory=5) == [0, 0, 0]
    torch.manual_seed(1)
    cfg = {**_tiny_config(), "memory": 5, "gate_bias": 0.0}
    model = DeskDeltaModel(cfg)
    with torch.no_grad():
        model.head.weight.normal_(std=0.05)  # an untrained head would copy: make the frames move
    model.save_pretrained(tmp_path / "m")
    assert model.window == 9  # the 8 steps of input history reach furthest
    first = _screens(np.random.default_rng(4), 1, 96, 128)[0]
    rng = np.random.default_rng(5)
    points = [(int(x), int(y)) for x, y in rng.integers(0, 190, (12, 2))]
    records = _records(points, click_at=3)
    offline, _ = load_pipeline(tmp_path / "m").rollout(first, records)
    assert len({f.tobytes() for f in offline}) > 6  # the frames differ
    live = replay_live(tmp_path / "m", first, records)
    assert all((a == b).all() for a, b in zip(live, offline, strict=True))
