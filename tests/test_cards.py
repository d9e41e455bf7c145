"""The bundled models keep their cards' promises: held-out metrics on a freshly rebuilt check set."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from neuralcomputer.cli import main
from neuralcomputer.errors import NCError
from neuralcomputer.experiments import cards

MODELS = Path(__file__).resolve().parents[1] / "models"
BUNDLED = ["cligen-cells", "cligen-tiny", "guiworld-delta", "guiworld-tiny"]


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_card_states_the_check_figures(name):
    """The README card and check.json say the same numbers, so neither can drift alone."""
    spec = cards.load_check(MODELS / name)
    card = (MODELS / name / "README.md").read_text()
    for key in spec["tolerance"]:
        assert f"{spec['metrics'][key]:.3f}" in card, f"{name}: card lacks {key} = {spec['metrics'][key]:.3f}"
    assert f"ncomp eval card --model models/{name}" in card


def test_check_file_errors_are_one_clear_line(tmp_path):
    with pytest.raises(NCError, match="no check file"):
        cards.load_check(tmp_path)
    (tmp_path / "check.json").write_text('{"kind": "terminal",\n "metrics": }')
    with pytest.raises(NCError, match="line 2: not valid JSON"):
        cards.load_check(tmp_path)
    (tmp_path / "check.json").write_text(json.dumps({"kind": "terminal", "metrics": {}, "tolerance": {"psnr": 1}}))
    with pytest.raises(NCError, match="tolerance for psnr but no metric"):
        cards.load_check(tmp_path)


def test_tolerance_decides_and_a_missing_metric_fails(tmp_path, monkeypatch):
    spec = {"kind": "terminal", "metrics": {"psnr": 25.0, "ssim": 0.9}, "tolerance": {"psnr": 1.0, "ssim": 0.02}}
    (tmp_path / "check.json").write_text(json.dumps(spec))
    for measured, ok in (({"psnr": 25.9, "ssim": 0.89}, True), ({"psnr": 23.5, "ssim": 0.9}, False),
                         ({"psnr": 25.0, "ssim": None}, False), ({"psnr": float("nan"), "ssim": 0.9}, False)):
        monkeypatch.setattr(cards, "measure", lambda *a, m=measured: m)
        result = cards.check_card(tmp_path, tmp_path / "work")
        assert result["ok"] is ok, measured


def test_a_retrained_model_is_held_to_the_shipped_card(tmp_path, monkeypatch):
    """--card compares a model (e.g. retrained from a card's commands) with another directory's check.json."""
    retrained = tmp_path / "runs" / "retrained"
    retrained.mkdir(parents=True)
    (retrained / "config.json").write_text(json.dumps({"kind": "cligen", "model": {}}))
    (retrained / "transformer.safetensors").write_bytes(b"")
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    (shipped / "check.json").write_text(json.dumps({"kind": "terminal", "metrics": {"psnr": 28.9, "ssim": 0.98},
                                                    "tolerance": {"psnr": 0.5, "ssim": 0.01}}))
    seen = []
    monkeypatch.setattr(cards, "measure", lambda model, spec, work: seen.append((model, spec)) or
                        {"psnr": 28.7, "ssim": 0.95})
    result = CliRunner().invoke(main, ["eval", "card", "--model", str(retrained), "--card", str(shipped),
                                       "--work", str(tmp_path / "work")])
    assert result.exit_code == 2  # the project's errors exit 2
    assert "psnr: measured 28.7000, card 28.9000 +- 0.5  ok" in result.output
    assert "ssim: measured 0.9500, card 0.9800 +- 0.01  OUT OF TOLERANCE" in result.output
    assert seen[0][0] == retrained and seen[0][1]["metrics"]["psnr"] == 28.9
    with pytest.raises(NCError, match="a desktop check, but .* is a terminal model"):
        cards.check_card(retrained, tmp_path / "work", card=MODELS / "guiworld-tiny")
    result = CliRunner().invoke(main, ["eval", "card", "--model", str(retrained), "--card", str(shipped), "--write"])
    assert result.exit_code == 2 and "takes no --card" in result.output


@pytest.fixture(scope="module")
def fresh_set(tmp_path_factory):
    """``fresh_set(name, work)``: the fresh check set of bundled model ``name`` placed in ``work`` (a link),
    rebuilt once for the models whose cards name the same set (both terminal models' cards name one
    set, both desktop models' another: a minute of recording or collecting each saved, same inputs)."""
    built: dict[str, Path] = {}

    def place(name: str, work: Path) -> None:
        spec = cards.load_check(MODELS / name)
        key = json.dumps(cards.set_of(spec), sort_keys=True)
        if key not in built:
            built[key] = cards.check_set(spec, tmp_path_factory.mktemp("check-set"))
        (work / built[key].name).symlink_to(built[key], target_is_directory=True)
    return place


def test_models_whose_cards_name_one_set_share_it_and_others_do_not():
    specs = {name: cards.load_check(MODELS / name) for name in BUNDLED}
    assert cards.set_of(specs["cligen-cells"]) == cards.set_of(specs["cligen-tiny"])
    assert cards.set_of(specs["guiworld-delta"]) == cards.set_of(specs["guiworld-tiny"])
    assert cards.set_of({**specs["guiworld-tiny"], "seed": 5}) != cards.set_of(specs["guiworld-tiny"])
    assert cards.set_of({**specs["guiworld-tiny"], "frames": 150}) == cards.set_of(specs["guiworld-tiny"])
    with pytest.raises(NCError, match="expected terminal or desktop"):
        cards.set_of({"kind": "audio"})


@pytest.mark.slow
@pytest.mark.timeout(1200)  # the Wan preset's 4 clips, 20 steps each: ~1 min, 5 on a loaded machine
@pytest.mark.parametrize("name", ["cligen-cells", "cligen-tiny"])
def test_terminal_model_meets_its_card_on_fresh_sessions(name, tmp_path, fresh_set):
    """Each bundled terminal model (CellGen, the default, and the Wan preset) on the check set's fresh
    sessions, as its card promises."""
    if shutil.which("bash") is None:
        pytest.skip("recording the check sessions needs bash")
    fresh_set(name, tmp_path)
    result = CliRunner().invoke(main, ["eval", "card", "--model", str(MODELS / name), "--work", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.output.count(" ok") == 3


@pytest.mark.slow
@pytest.mark.parametrize("name,checks", [("guiworld-tiny", 4), ("guiworld-delta", 2)])
def test_desktop_model_meets_its_card_on_fresh_desktop_episodes(tmp_path, name, checks, fresh_set):
    if not all(shutil.which(p) for p in ("Xvfb", "xfce4-session", "dbus-daemon")):
        pytest.skip("the check episodes are collected on a real Xvfb + XFCE desktop")
    fresh_set(name, tmp_path)
    result = CliRunner().invoke(main, ["eval", "card", "--model", str(MODELS / name), "--work", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.output.count(" ok") == checks
