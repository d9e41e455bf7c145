"""The CLIGen experiment tables: statistics, and every table's --quick run from nothing but the clone."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from neuralcomputer.cli import main
from neuralcomputer.experiments.cligen import mean_ci, wilson

ROOT = Path(__file__).resolve().parents[1]


def test_wilson_interval_known_values_and_edges():
    w = wilson(8, 10)
    assert w["mean"] == 0.8 and w["lo"] == pytest.approx(0.490, abs=1e-3) and w["hi"] == pytest.approx(0.943, abs=1e-3)
    zero = wilson(0, 20)
    assert zero["lo"] == 0.0 and 0.1 < zero["hi"] < 0.2  # 0/20 still leaves up to ~16% plausible
    assert wilson(0, 0)["mean"] is None


def test_bootstrap_interval_covers_the_mean_and_narrows_with_more_clips():
    rng = np.random.default_rng(0)
    small, large = mean_ci(rng.normal(25, 2, 8)), mean_ci(rng.normal(25, 2, 200))
    for s in (small, large):
        assert s["lo"] < s["mean"] < s["hi"]
    assert large["hi"] - large["lo"] < (small["hi"] - small["lo"]) / 2
    assert mean_ci([None, float("nan"), 3.0]) == {"mean": 3.0, "lo": 3.0, "hi": 3.0, "n": 1}


def test_tables_that_train_need_data_unless_quick(tmp_path):
    result = CliRunner().invoke(main, ["experiment", "cligen", "tiers", "--out", str(tmp_path / "x")])
    assert result.exit_code != 0
    assert "give --data DATASET (or --quick" in result.output
    assert not (tmp_path / "x" / "tiers.json").exists()


@pytest.fixture(scope="module")
def quick_out(tmp_path_factory):
    if shutil.which("bash") is None:
        pytest.skip("bash is needed to record the quick dataset")
    return tmp_path_factory.mktemp("experiments")


def _run(out: Path, table: str) -> dict:
    models = ["--model", str(ROOT / "models" / "cligen-tiny"), "--desktop-model", str(ROOT / "models" / "guiworld-tiny")]
    result = CliRunner().invoke(main, ["experiment", "cligen", table, "--quick", "--out", str(out), *models])
    assert result.exit_code == 0, result.output
    text = (out / f"{table}.md").read_text()
    assert "Quick run (`--quick`)" in text  # nobody mistakes a pipeline check for a result
    data = json.loads((out / f"{table}.json").read_text())
    assert data["quick"] is True
    return data


@pytest.mark.slow
def test_quick_tiers_and_steps_train_score_and_plot(quick_out):
    tiers = _run(quick_out, "tiers")
    assert list(tiers["rows"]) == ["semantic", "regular", "detailed", "mixed"]
    for name, row in tiers["rows"].items():
        assert row["clips"] >= 1 and math.isfinite(row["psnr"]["mean"]) and 0 < row["ssim"]["mean"] <= 1
        assert row["eval_captions"] == ("detailed" if name == "mixed" else name)
    assert tiers["rows"]["detailed"]["paper"] == {"psnr": 26.89, "ssim": 0.867}
    paired = tiers["rows"]["detailed"]["psnr_minus_semantic"]  # per clip, on the same clips
    per = tiers["rows"]["detailed"]["per_clip"]
    base = tiers["rows"]["semantic"]["per_clip"]
    assert paired["n"] == len(per) and paired["mean"] == pytest.approx(
        np.mean([per[i]["psnr"] - base[i]["psnr"] for i in per]))
    assert tiers["rows"]["semantic"]["psnr_minus_semantic"] is None
    # one tokenizer serves every tier: only the first run trained one
    assert (quick_out / "runs" / "semantic" / "tokenizer" / "model").is_dir()
    assert not (quick_out / "runs" / "detailed" / "tokenizer").exists()

    steps = _run(quick_out, "steps")
    assert steps["seeds"] == [0, 1] and set(steps["curves"]) == {"0", "1"}
    assert steps["curves"]["0"] != steps["curves"]["1"]  # the seed reaches the run
    last = steps["summary"][max(steps["summary"], key=int)]
    assert last["psnr"]["n"] == 2 and last["psnr"]["min"] <= last["psnr"]["mean"] <= last["psnr"]["max"]
    assert (quick_out / "steps.png").stat().st_size > 10_000


@pytest.mark.slow
def test_quick_arithmetic_runs_every_mode_and_hybrid_captions_come_from_a_real_python(quick_out):
    if shutil.which("bwrap") is None:
        pytest.skip("hybrid mode runs Python in bubblewrap")
    data = _run(quick_out, "arithmetic")
    rows = data["rows"]
    assert list(rows) == ["native", "reprompt", "hybrid"] and rows["reprompt"]["paper"] == 0.83
    for row in rows.values():
        assert row["accuracy"]["n"] == 2 and 0 <= row["accuracy"]["lo"] <= row["accuracy"]["hi"] <= 1
    # the sandboxed Python computed each answer, so hybrid captions place the oracle's answer where the
    # reprompt captions do (the engine's caption also quotes the typed line, from its bare prompt)
    from neuralcomputer.data.terminal.captions import parse_detailed

    for hybrid, oracle in zip(rows["hybrid"]["items"], rows["reprompt"]["items"], strict=True):
        h, o = parse_detailed(hybrid["caption"]), parse_detailed(oracle["caption"])
        assert o.lines == (oracle["answer"], ">>>") and h.lines[-2:] == o.lines
        assert h.row + len(h.lines) == o.row + len(o.lines)
    assert all(i["answer"] not in i["caption"].split("`")[-1] for i in rows["native"]["items"])
    # the example: the given frame, then each mode's last frame for the first problem, stacked
    from PIL import Image

    example = np.asarray(Image.open(quick_out / "arithmetic-example.png"))
    assert example.shape[0] == 4 * 8 * 17 + 3 * 2 and example.std() > 0
    assert "arithmetic-example.png" in (quick_out / "arithmetic.md").read_text()


@pytest.mark.slow
def test_quick_levers_train_each_variant_and_pair_it_with_cellgen(quick_out):
    result = CliRunner().invoke(main, ["experiment", "cligen", "levers", "--quick", "--seeds", "0",
                                       "--out", str(quick_out / "levers")])
    assert result.exit_code == 0, result.output
    data = json.loads((quick_out / "levers" / "levers.json").read_text())
    assert data["quick"] and data["preset"] == "cligen-cells" and data["seeds"] == [0]
    rows = data["rows"]
    assert list(rows) == ["cellgen", "no caption layout (caption bytes only)", "no copy prior",
                          "no timing input (the network never reads the row windows)",
                          "no timing at all (captions' timing never read)",
                          "cellgen, 4 masked-diffusion passes", "cellgen, no text constraint at sampling",
                          "cellgen, captions' timing ignored at sampling",
                          "cellgen, typed rows not placed key by key"]
    full = rows["cellgen"]["seeds"]["0"]
    # the copy prior and the laid-out caption already put the new text in place before training
    assert full["changed_char_acc"]["mean"] == 1.0 and full.get("psnr_minus_cellgen") is None
    bytes_only = rows["no caption layout (caption bytes only)"]["seeds"]["0"]
    assert bytes_only["changed_char_acc_minus_cellgen"]["mean"] < 0  # the layout is what places it
    # validation during training samples whole clips and scores them as the steps table reads them
    log = (quick_out / "levers" / "seed-0" / "runs" / "cellgen" / "metrics.jsonl").read_text().splitlines()
    val = [json.loads(line) for line in log if "val/psnr" in line]
    assert val and all(10 < r["val/psnr"] < 100 and 0 < r["val/ssim"] <= 1 for r in val)
    assert all(0 <= r["val/line_acc"] <= r["val/char_acc"] <= 1 and r["val/changed_char_acc"] == 1.0 for r in val)


@pytest.mark.slow
def test_quick_determinism_rows_are_as_expected(quick_out):
    data = _run(quick_out, "determinism")
    rows = {(r["system"], r["check"].split(",")[0]): r for r in data["rows"]}
    assert rows[("terminal", "same inputs and seed")]["max_abs_diff"] == 0
    assert rows[("terminal", "another seed")]["max_abs_diff"] > 0
    assert rows[("terminal", "save")]["identical"] and rows[("desktop", "save")]["identical"]
    assert rows[("desktop", "same inputs and seed")]["identical"]
    assert rows[("training", "two runs")]["max_abs_diff"] == 0.0


@pytest.mark.slow
def test_tier_captions_pairs_one_model_over_the_three_tiers(quick_out):
    """An untrained CellGen (the copy prior alone) sampled with each tier: only the detailed caption
    places the new text, so it beats the regular tier on the same clips, and the table says so."""
    import torch

    from neuralcomputer.config import preset_config
    from neuralcomputer.experiments.cligen import quick_dataset
    from neuralcomputer.models.cellgen import CellGenNet
    from neuralcomputer.models.tile_codec import TileCodec
    from neuralcomputer.pipelines.cells import CellPipeline

    data = quick_dataset(quick_out)
    torch.manual_seed(0)
    m = preset_config("cligen-cells")["model"]
    m["net"] |= {"dim": 32, "layers": 1, "heads": 2}
    m["regular_hints"] = False  # the regular tier's layout is tested on its own (tests/test_cellgen.py)
    codec = TileCodec.rendered()
    model = CellPipeline(CellGenNet(len(codec), m["num_frames"], **m["net"]), codec, m).save(quick_out / "untrained")
    out = quick_out / "tier-captions"
    result = CliRunner().invoke(main, ["experiment", "cligen", "tier-captions", "--data", str(data), "--out", str(out),
                                       "--models", f"s0={model}", "--eval-clips", "3"])
    assert result.exit_code == 0, result.output
    row = json.loads((out / "tier-captions.json").read_text())["rows"]["s0"]
    assert list(row["tiers"]) == ["semantic", "regular", "detailed"] and row["tiers"]["detailed"]["clips"] == 3
    assert row["detailed_minus_regular"]["psnr"]["mean"] > 0
    assert row["regular_minus_semantic"]["psnr"]["mean"] == 0  # neither places any text
    assert "| s0 | detailed | 3 |" in (out / "tier-captions.md").read_text()
