"""``ncomp experiment guiworld TABLE --quick``: every table end to end from nothing, on tiny real
desktop episodes collected on the spot (Xvfb + XFCE), as CI runs it from a clean clone."""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from neuralcomputer.cli import main
from neuralcomputer.data.dataset import load_manifest
from neuralcomputer.data.desktop.xsession import marked_processes
from neuralcomputer.errors import NCError
from neuralcomputer.experiments.guiworld import (
    QUICK_SOURCES,
    SEED_METRICS,
    VARIANTS,
    seed_markdown,
    seed_summary,
)

HAVE_DESKTOP = all(shutil.which(p) for p in ("Xvfb", "xfce4-session", "dbus-daemon"))
needs_desktop = pytest.mark.skipif(not HAVE_DESKTOP, reason="Xvfb / XFCE4 not installed (make setup installs them)")


def test_without_data_or_quick_fails_in_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["experiment", "guiworld", "injection", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.strip().count("\n") == 0 and "--data" in result.output and "--quick" in result.output
    assert not (tmp_path / "x").exists()  # nothing started


def _table(ssim: dict[str, float]) -> dict:
    rows = {name: {"ssim": v, "psnr": 10 * v, "tf_ssim": v, "tf_psnr": 20.0} for name, v in ssim.items()}
    return {"table": "actions", "quick": False, "preset": "guiworld-tiny", "steps": 500, "eval_data": "eval",
            "rows": rows}


def test_seed_summary_separates_only_differences_above_seed_noise() -> None:
    # meta beats raw at both seeds by more than either variant moves between seeds: separated
    clear = seed_summary({0: _table({"raw": 0.30, "meta": 0.40}), 1: _table({"raw": 0.32, "meta": 0.43})})
    entry = clear["rows"]["meta"]["rollout SSIM"]
    assert clear["reference"] == "raw" and entry["separated"] and entry["diff"] == pytest.approx([0.10, 0.11])
    assert entry["spread"] == pytest.approx(0.03) and entry["values"] == [0.40, 0.43]
    assert not clear["rows"]["meta"]["one-step PSNR"]["separated"]  # no difference at all
    # a difference smaller than the seed spread, or one that changes sign, is not
    noisy = seed_summary({0: _table({"raw": 0.30, "meta": 0.32}), 1: _table({"raw": 0.36, "meta": 0.39})})
    assert not noisy["rows"]["meta"]["rollout SSIM"]["separated"] and noisy["rows"]["meta"]["rollout SSIM"]["same_sign"]
    assert "| +0.020 / +0.030 | same sign, within noise |" in seed_markdown(noisy)
    flips = seed_summary({0: _table({"raw": 0.30, "meta": 0.40}), 1: _table({"raw": 0.40, "meta": 0.30})})
    flipped = flips["rows"]["meta"]["rollout SSIM"]
    assert not flipped["separated"] and not flipped["same_sign"] and "| +0.100 / -0.100 | no |" in seed_markdown(flips)
    md = seed_markdown(clear)
    assert "| meta | rollout SSIM | 0.400 | 0.430 | 0.030 | +0.100 / +0.110 | **yes** |" in md
    assert md.count("| raw |") == len(SEED_METRICS) and "{" not in md and "episodes of eval." in md
    with pytest.raises(NCError, match="variants"):
        seed_summary({0: _table({"raw": 0.3, "meta": 0.4}), 1: _table({"raw": 0.3})})


def test_seeds_option_needs_two_seeds(tmp_path: Path) -> None:
    for seeds, message in (("0", "at least two different seeds"), ("0,x", "comma-separated integers")):
        result = CliRunner().invoke(main, ["experiment", "guiworld", "actions", "--data", str(tmp_path), "--seeds",
                                           seeds, "--out", str(tmp_path / "x")])
        assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


@pytest.fixture(scope="module")
def quick_out(tmp_path_factory: pytest.TempPathFactory):
    """One output folder for the four tables, so the quick data is collected once; its desktops are
    tagged, and none may outlive the module."""
    tag = f"q{os.getpid()}-"
    old = os.environ.get("NC_DESKTOP_TAG")
    os.environ["NC_DESKTOP_TAG"] = tag
    try:
        yield tmp_path_factory.mktemp("quick")
    finally:
        if old is None:
            os.environ.pop("NC_DESKTOP_TAG", None)
        else:
            os.environ["NC_DESKTOP_TAG"] = old
    deadline = time.monotonic() + 5.0
    while marked_processes(prefix=tag) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not marked_processes(prefix=tag), "a quick-data desktop outlived its episode"


@pytest.mark.slow
@needs_desktop
@pytest.mark.parametrize("table", ["injection", "cursor", "actions", "data"])
def test_quick_table_runs_from_nothing(quick_out: Path, table: str) -> None:
    result = CliRunner().invoke(main, ["experiment", "guiworld", table, "--quick", "--out", str(quick_out)])
    assert result.exit_code == 0, result.output[-3000:]
    md, table_json = quick_out / f"{table}.md", quick_out / f"{table}.json"
    assert md.is_file() and table_json.is_file()
    res = json.loads(table_json.read_text())
    assert res["quick"] is True and res["steps"] == 3
    assert md.read_text().startswith("# QUICK PIPELINE CHECK, not a result") and "--quick" in md.read_text()
    assert Path(res["eval_data"]) == quick_out / "quick-data" / "eval"
    expected = QUICK_SOURCES if table == "data" else tuple(VARIANTS[table])
    assert set(res["rows"]) == set(expected)
    for name, row in res["rows"].items():
        for key in ("psnr", "ssim", "tf_psnr", "tf_ssim"):
            assert row[key] is not None and math.isfinite(row[key]), (name, key, row[key])
        assert 0 < row["ssim"] <= 1 and math.isfinite(row["final_loss"])
        assert set(row["cursor_hit"]) == {"2", "5", "10"}  # the model sees the whole quick screen
        assert row["episodes"] == 1 and row["frames_per_episode"] == 5
        config = json.loads((quick_out / "runs" / name / "config.json").read_text())
        assert config["train"]["steps"] == 3 and (config["model"]["height"], config["model"]["width"]) == (192, 256)
        assert f"| {name} |" in md.read_text()
    if table == "data":  # one real dataset per source, recorded with that source's policy
        for source in QUICK_SOURCES:
            data = Path(res["rows"][source]["data"])
            assert data == quick_out / "quick-data" / source
            assert {r["policy"] for r in load_manifest(data)} == {source}
    # collected once, reused by every later table
    scripted = quick_out / "quick-data" / "scripted"
    assert len(load_manifest(scripted)) == 1 and len(list((scripted / "reports").glob("*.json"))) == 1
    assert [r["split"] for r in load_manifest(quick_out / "quick-data" / "eval")] == ["test"]


@pytest.mark.slow
@needs_desktop
def test_quick_table_over_seeds(quick_out: Path) -> None:
    """--seeds trains the whole table once per seed and sets each difference beside the seed spread."""
    result = CliRunner().invoke(main, ["experiment", "guiworld", "actions", "--quick", "--seeds", "0,1",
                                       "--out", str(quick_out)])
    assert result.exit_code == 0, result.output[-3000:]
    summary = json.loads((quick_out / "actions-seeds.json").read_text())
    assert summary["seeds"] == [0, 1] and summary["quick"] and summary["reference"] == "raw"
    for seed in (0, 1):
        config = json.loads((quick_out / f"seed-{seed}" / "runs" / "meta" / "config.json").read_text())
        assert config["train"]["seed"] == seed
        assert json.loads((quick_out / f"seed-{seed}" / "actions.json").read_text())["quick"]
    meta = summary["rows"]["meta"]["rollout SSIM"]
    assert len(meta["values"]) == 2 and meta["values"][0] != meta["values"][1]  # the seed changed the model
    assert (quick_out / "actions-seeds.md").read_text().startswith("# QUICK PIPELINE CHECK, not a result")
    # run again: nothing is retrained, and finished runs already scored on these episodes are not re-scored...
    table = quick_out / "seed-1" / "actions.json"
    marked = json.loads(table.read_text())
    true_ssim, marked["rows"]["raw"]["ssim"] = marked["rows"]["raw"]["ssim"], 0.123456
    table.write_text(json.dumps(marked))
    args = ["experiment", "guiworld", "actions", "--quick", "--seeds", "0,1", "--out", str(quick_out)]
    assert CliRunner().invoke(main, args).exit_code == 0
    assert json.loads(table.read_text())["rows"]["raw"]["ssim"] == 0.123456
    # ...unless the run finished after the table was written
    done = quick_out / "seed-1" / "runs" / "raw" / "done.json"
    os.utime(done, (table.stat().st_mtime + 10, table.stat().st_mtime + 10))
    assert CliRunner().invoke(main, args).exit_code == 0
    assert json.loads(table.read_text())["rows"]["raw"]["ssim"] == true_ssim  # rollouts are deterministic
