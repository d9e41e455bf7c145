"""Rendering recordings into datasets: manifest, lossless payloads, splits, variants, shards, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from neuralcomputer.data.dataset import dataset_info, is_dataset, load_manifest, read_clip_payload, split_for
from neuralcomputer.data.terminal.build import BuildOptions, find_casts, render_dataset, select_shard
from neuralcomputer.data.terminal.clips import ClipOptions, iter_clips
from neuralcomputer.data.torch_dataset import ClipDataset
from neuralcomputer.errors import NCError
from tests.helpers import make_cast, real_cast

SMALL_REAL = ["00cex__frontend-project-44__demo.cast", "asciinema__asciinema__tests__casts__demo.json",
              "BragatteMAS__os-postinstall-scripts__assets__demo.cast"]  # v2, v1, v3


@pytest.fixture
def small_real(tmp_path):
    folder = tmp_path / "casts"
    folder.mkdir()
    for name in SMALL_REAL:
        (folder / name).symlink_to(real_cast(name))
    return folder


def _bad_casts(folder):
    (folder / "truncated.cast").write_text('{"version": 2, "width": 80, "height": 24}\n[0.1, "o", "hel')
    (folder / "binary.cast").write_bytes(b'{"version": 2, "width": 80, "height": 24}\n[0.1, "o", "\xff\xfe"]\n')
    (folder / "huge.cast").write_text('{"version": 2, "width": 100000, "height": 24}\n')
    (folder / "backwards.cast").write_text('{"version": 2, "width": 80, "height": 24}\n[2.0, "o", "a"]\n[1.0, "o", "b"]\n')


def test_render_real_casts_manifest_payloads_and_info(small_real, tmp_path):
    out = tmp_path / "ds"
    summary = render_dataset([small_real], out, progress=False)
    assert summary.rendered == 3 and not summary.failed
    records = load_manifest(out)
    assert len(records) == summary.clips > 3
    for r in records:
        for key in ("id", "session", "source", "split", "fps", "width", "height", "frames", "grid", "captions", "path"):
            assert key in r
        assert set(r["captions"]) == {"semantic", "regular", "detailed"} and all(r["captions"].values())
    # lossless: the stored frames are exactly what the renderer produced, text included
    first = records[0]
    payload = read_clip_payload(out / first["path"])
    source_clip = next(c for c in iter_clips(first["source"]) if c.index == 0)
    assert np.array_equal(payload["frames"], source_clip.frames[source_clip.frame_index])
    assert [str(t) for t in payload["text"]] == [source_clip.text(t) for t in range(source_clip.num_frames)]
    assert payload["frames"].shape == (first["frames"], first["height"], first["width"], 3)
    # splits by session: every clip of a recording in one split
    by_session: dict[str, set[str]] = {}
    for r in records:
        by_session.setdefault(r["session"], set()).add(r["split"])
        assert r["split"] == split_for(r["session"])
    assert all(len(s) == 1 for s in by_session.values())
    info = dataset_info(out)
    assert info["clips"] == len(records) and info["frames"] == sum(r["frames"] for r in records)
    assert info["hours"] == pytest.approx(info["frames"] / 15 / 3600, abs=1e-4)
    assert set(info["captions"]) == {"semantic", "regular", "detailed"}
    assert not list(out.rglob("*.tmp"))


def test_bad_recordings_are_skipped_and_reported(small_real, tmp_path):
    _bad_casts(small_real)
    out = tmp_path / "ds"
    summary = render_dataset([small_real], out, progress=False)
    assert summary.rendered == 3 and len(summary.failed) == 4
    for name, line in [("truncated", ":2:"), ("binary", ":2:"), ("huge", ":1:"), ("backwards", ":3:")]:
        message = next(v for k, v in summary.failed.items() if name in k)
        assert line in message, message
    sources = {r["source"] for r in load_manifest(out)}
    assert not any("truncated" in s or "huge" in s for s in sources)
    report = json.loads(next((out / "reports").glob("render-*.json")).read_text())
    assert len([c for c in report["casts"] if c["error"]]) == 4
    assert not list(out.rglob("*.tmp"))


def test_a_cast_failing_midway_leaves_no_clips(tmp_path):
    folder = tmp_path / "c"
    folder.mkdir()
    events = [(i * 0.5, "o", f"line {i}\r\n") for i in range(40)]
    path = make_cast(folder / "late.cast", events)
    path.write_text(path.read_text() + '[30.0, "o"]\n')  # broken after 20 s of good clips
    out = tmp_path / "ds"
    summary = render_dataset([folder], out, progress=False)
    assert summary.rendered == 0 and len(summary.failed) == 1
    assert not list(out.rglob("*.npz"))


def test_shards_partition_the_job(small_real, tmp_path):
    whole = render_dataset([small_real], tmp_path / "whole", progress=False)
    shared = tmp_path / "sharded"
    for k in range(2):
        render_dataset([small_real], shared, shard=(k, 2), progress=False)
    assert sorted(p.name for p in shared.glob("manifest*.jsonl")) == [
        "manifest-00000-of-00002.jsonl", "manifest-00001-of-00002.jsonl"]
    # a sharded set is a dataset to every command that asks (no manifest.jsonl of its own)
    assert is_dataset(shared) and not (shared / "manifest.jsonl").exists() and not is_dataset(tmp_path)
    ids = sorted(r["id"] for r in load_manifest(shared))
    assert ids == sorted(r["id"] for r in load_manifest(tmp_path / "whole")) and len(ids) == whole.clips
    items = list(range(10))
    assert sorted(select_shard(items, (0, 3)) + select_shard(items, (1, 3)) + select_shard(items, (2, 3))) == items
    with pytest.raises(NCError):
        select_shard(items, (3, 3))


def test_clean_variant_drops_static_and_overflowing_clips(tmp_path):
    folder = tmp_path / "c"
    folder.mkdir()
    make_cast(folder / "static.cast", [(0.0, "o", "$ "), (6.0, "o", " ")], cols=20, rows=4)
    make_cast(folder / "wide.cast", [(0.1, "o", "x" * 30), (1.0, "o", "y")], cols=20, rows=4)
    make_cast(folder / "good.cast", [(0.1, "o", "$ ls\r\n"), (0.5, "o", "a b\r\n$ ")], cols=20, rows=4)
    opts = BuildOptions(variant="clean", clip=ClipOptions(clip_seconds=1.0, max_idle=10))
    summary = render_dataset([folder], tmp_path / "ds", opts, progress=False)
    assert summary.dropped.get("static", 0) >= 1 and summary.dropped.get("exceeds-grid", 0) >= 1
    kept = {r["source"].rsplit("/", 1)[-1] for r in load_manifest(tmp_path / "ds")}
    assert "good.cast" in kept and "wide.cast" not in kept
    general = render_dataset([folder], tmp_path / "dg", progress=False)
    assert general.clips > summary.clips


def test_torch_dataset_items(small_real, tmp_path):
    out = tmp_path / "ds"
    render_dataset([small_real], out, progress=False)
    ds = ClipDataset(out, split=None, tier="semantic", num_frames=80)
    item = ds[0]
    assert item["frames"].shape[:2] == (80, 3) and item["frames"].dtype.__str__() == "torch.float32"
    assert float(item["frames"].min()) >= 0.0 and float(item["frames"].max()) <= 1.0
    assert item["valid"].sum() == 75 and len(item["text"]) == 80
    assert item["caption"] == load_manifest(out)[0]["captions"]["semantic"]
    with pytest.raises(NCError):
        ClipDataset(out, split="holdout")


def test_find_casts_and_missing_paths(tmp_path):
    with pytest.raises(NCError, match="no such file"):
        find_casts([tmp_path / "nope"])
    with pytest.raises(NCError, match="no manifest"):
        load_manifest(tmp_path)


@pytest.mark.slow
def test_every_real_cast_renders_faithfully(real_casts, tmp_path):
    """The issue's acceptance check: every public recording becomes clips, none with emulator errors."""
    from tests.helpers import real_cast_paths

    n = len(real_cast_paths())
    summary = render_dataset([real_casts], tmp_path / "general", shard=(0, 1), workers=2, progress=False)
    assert summary.failed == {} and summary.rendered == n
    assert summary.faithful == n  # every escape sequence interpreted (or known to be invisible)
    info = dataset_info(tmp_path / "general")
    assert info["sessions"] == n and info["clips"] > 10 * n
