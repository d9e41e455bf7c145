"""Clips: frame timing, idle capping, deduplication, resize segments, floods, command detection."""

from __future__ import annotations

import numpy as np
import pytest

from neuralcomputer.data.terminal.clips import ClipOptions, iter_clips, strip_prompt
from neuralcomputer.errors import CastError
from tests.helpers import make_cast, real_cast


def test_frames_follow_the_timeline(tmp_path):
    cast = make_cast(tmp_path / "t.cast", [(0.5, "o", "a"), (1.0, "o", "b"), (2.9, "o", "c")])
    clips = list(iter_clips(cast, ClipOptions(fps=10, clip_seconds=2.0, min_clip_seconds=0.1)))
    frames = [c.text(t).strip() for c in clips for t in range(c.num_frames)]
    # frame k shows every event with time <= k/10 s (first frame kept: the state at t = 0)
    assert frames[0] == "" and frames[4] == "" and frames[5] == "a"
    assert frames[9] == "a" and frames[10] == "ab" and frames[29] == "abc"
    assert [c.num_frames for c in clips[:-1]] == [20]
    assert clips[1].start == pytest.approx(2.0)
    for c in clips:  # deduplicated storage reconstructs every frame
        assert c.frames.shape[0] == len(c.texts) == c.frame_index.max() + 1
        assert c.cursor.shape == (c.num_frames, 3)


def test_idle_gaps_are_capped(tmp_path):
    cast = make_cast(tmp_path / "t.cast", [(0.1, "o", "a"), (60.0, "o", "b")])
    clips = list(iter_clips(cast, ClipOptions(fps=5, clip_seconds=10, max_idle=2.0, min_clip_seconds=0.1)))
    total = sum(c.num_frames for c in clips)
    assert total == pytest.approx(5 * (0.1 + 2.0 + 1.0), abs=2)  # 60 s of silence became 2 s


def test_header_idle_time_limit_wins_when_smaller(tmp_path):
    cast = make_cast(tmp_path / "t.cast", [(0.1, "o", "a"), (60.0, "o", "b")])
    cast.write_text(cast.read_text().replace('"version": 2', '"version": 2, "idle_time_limit": 0.5', 1))
    total = sum(c.num_frames for c in iter_clips(cast, ClipOptions(fps=10, max_idle=5, min_clip_seconds=0.1)))
    assert total <= 10 * (0.1 + 0.5 + 1.0) + 2


def test_static_clip_stores_one_frame(tmp_path):
    cast = make_cast(tmp_path / "t.cast", [(0.0, "o", "$ "), (9.0, "o", "x")])
    clip = next(iter_clips(cast, ClipOptions(fps=15, clip_seconds=1.0, max_idle=10)))
    assert not clip.changes and clip.frames.shape[0] == 1 and clip.num_frames == 15


def test_resize_starts_a_new_segment_with_the_new_size(tmp_path):
    cast = make_cast(tmp_path / "t.cast", [(0.0, "o", "a"), (1.5, "r", "50x10"), (2.0, "o", "b"), (3.5, "o", "c")],
                     cols=40, rows=6)
    clips = list(iter_clips(cast, ClipOptions(fps=10, clip_seconds=5, min_clip_seconds=0.5)))
    assert [c.grid for c in clips] == [(40, 6), (50, 10)]
    h0, w0 = clips[0].frames.shape[1:3]
    h1, w1 = clips[1].frames.shape[1:3]
    assert w1 / w0 == pytest.approx(50 / 40) and h1 / h0 == pytest.approx(10 / 6)
    assert clips[1].text(clips[1].num_frames - 1).startswith("abc")


def test_flood_guard(tmp_path):
    cast = make_cast(tmp_path / "t.cast", [(0.0, "o", "\x1b[31m" * 5000)])
    with pytest.raises(CastError, match="flood"):
        list(iter_clips(cast, ClipOptions(max_output_chars=10_000)))


def test_commands_from_input_events(tmp_path):
    events = [(0.0, "o", "user@host:~$ ")]
    t = 0.1
    for ch in "ls -la":
        events += [(t, "i", ch), (t + 0.01, "o", ch)]
        t += 0.1
    events += [(t, "i", "\r"), (t + 0.01, "o", "\r\ntotal 0\r\nuser@host:~$ ")]
    cast = make_cast(tmp_path / "t.cast", events)
    clip = next(iter_clips(cast))
    assert [c.text for c in clip.commands] == ["ls -la"]


def test_commands_from_echo_heuristic_without_input_events(tmp_path):
    events, t = [(0.0, "o", "$ ")], 0.1
    for ch in "git status":
        events.append((t, "o", ch))
        t += 0.1
    events += [(t, "o", "\r\nOn branch main\r\n$ ")]
    clip = next(iter_clips(make_cast(tmp_path / "t.cast", events)))
    assert [c.text for c in clip.commands] == ["git status"]


def test_strip_prompt():
    assert strip_prompt("user@ncomp:~/work$ ls -la") == "ls -la"
    assert strip_prompt("marcin@puter ~> agg demo.cast") == "agg demo.cast"
    assert strip_prompt(">>> 2 + 3") == "2 + 3"


def test_real_cast_clips_have_consistent_shapes():
    path = real_cast("asciinema__agg__demo.cast")  # v3, colours, a progress bar
    clips = list(iter_clips(path))
    assert len(clips) >= 5
    shapes = {c.frames.shape[1:] for c in clips}
    assert len(shapes) == 1
    assert all(c.num_frames == 75 for c in clips[:-1])
    assert all(c.unhandled == 0 for c in clips)
    assert any("neofetch" in c.text(t) or "asciiquarium" in c.text(t) for c in clips for t in range(c.num_frames))
    assert np.mean([c.changes for c in clips]) > 0.5
