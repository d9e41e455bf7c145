"""Caption tiers: semantic has no literal text, detailed quotes commands and screen text."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from neuralcomputer.data.terminal.captions import (
    CaptionContext,
    RowTiming,
    TemplateCaptioner,
    context_for,
    new_screen_lines,
    parse_commands,
    parse_detailed,
    parse_regular,
    parse_timing,
    row_timing,
    screen_change,
    timing_sentence,
)
from neuralcomputer.data.terminal.clips import iter_clips
from tests.helpers import make_cast


def _authored_cast(path):
    meta = {"generator": "basic", "task": "look around a home directory",
            "steps": [{"intent": "list the files", "command": "ls"}, {"intent": "print a message", "command": "echo hi"}]}
    events = [(0.0, "o", "$ "), (0.2, "m", "list the files"), (0.3, "i", "l"), (0.3, "o", "l"), (0.4, "i", "s"),
              (0.4, "o", "s"), (0.5, "i", "\r"), (0.5, "o", "\r\nnotes.txt  zebra.md\r\n$ "),
              (1.0, "m", "print a message"), (1.1, "o", "echo hi"), (1.2, "i", "\r"), (1.2, "o", "\r\nhi\r\n$ ")]
    return make_cast(path, events, x_neuralcomputer=meta)


def test_three_tiers_from_an_authored_session(tmp_path):
    clip = next(iter_clips(_authored_cast(tmp_path / "a.cast")))
    assert [c.text for c in clip.commands] == ["ls", "echo hi"]
    caps = TemplateCaptioner().caption(context_for(clip, task="look around a home directory"))
    assert "list the files" in caps["semantic"] and "print a message" in caps["semantic"]
    for literal in ("ls", "notes.txt", "zebra", "echo hi"):
        assert literal not in caps["semantic"].split()  # no literal text in the semantic tier
    assert "`ls`" in caps["regular"] and "`echo hi`" in caps["regular"]
    assert "notes.txt  zebra.md" in caps["detailed"] and "`echo hi`" in caps["detailed"]
    assert "hi" in caps["detailed"].splitlines()


def test_semantic_from_program_names_without_structure(tmp_path):
    events, t = [(0.0, "o", "$ ")], 0.1
    for ch in "git log":
        events.append((t, "o", ch))
        t += 0.1
    events.append((t, "o", "\r\ncommit 1234abcd\r\n$ "))
    clip = next(iter_clips(make_cast(tmp_path / "g.cast", events)))
    caps = TemplateCaptioner().caption(context_for(clip))
    assert "git version control" in caps["semantic"] and "1234abcd" not in caps["semantic"]
    assert "commit 1234abcd" in caps["detailed"]


def test_new_screen_lines_is_a_multiset_difference():
    assert new_screen_lines("a\nb\n", "a\nb\nb\nc") == ["b", "c"]
    assert new_screen_lines("x", "") == []


def test_detailed_tier_is_bounded():
    ctx = CaptionContext(commands=["cat big"], intents=[], task="", first_text="", last_text="\n".join(["y" * 80] * 24),
                         new_lines=["y" * 80] * 24, full_screen=False)
    caption = TemplateCaptioner(max_detailed_chars=500).detailed(ctx)
    assert 500 < len(caption) < 600 and caption.endswith(" ...")
    assert parse_detailed(caption).lines == ("y" * 80,) * 6  # a cut quote keeps only its whole lines


def _paste(first: str, change) -> list[str]:
    rows = first.split("\n")
    out = rows[change.scroll:] + [""] * change.scroll
    out[change.row:change.row + len(change.lines)] = change.lines
    return [line.rstrip() for line in out]


_LINE = st.text(alphabet=" ab#$>", max_size=6)


@given(st.lists(_LINE, min_size=4, max_size=4), st.lists(_LINE, min_size=4, max_size=4))
def test_the_detailed_tier_determines_the_last_screen(first_rows, last_rows):
    """Pasting what the detailed caption quotes, where it says, over the first screen scrolled as it says,
    gives the last screen exactly (indentation and repeated lines included)."""
    first, last = "\n".join(first_rows), "\n".join(last_rows)
    change = screen_change(first, last)
    assert _paste(first, change) == [line.rstrip() for line in last_rows]
    ctx = CaptionContext(commands=["x"], intents=[], task="", first_text=first, last_text=last, new_lines=[],
                         full_screen=False)
    if change.lines:
        assert parse_detailed(TemplateCaptioner().detailed(ctx)) == change


def test_the_detailed_tier_says_the_scroll_and_keeps_indentation():
    first = "\n".join(f"line {i}" for i in range(6))
    last = "\n".join([f"line {i}" for i in range(2, 6)] + ["  indented", "$"])
    ctx = CaptionContext(commands=["ls"], intents=[], task="", first_text=first, last_text=last, new_lines=[],
                         full_screen=False)
    caption = TemplateCaptioner().detailed(ctx)
    assert caption == "The user types `ls`. The screen scrolls up 2 lines. From line 5 the screen reads:\n  indented\n$"


def test_row_timing_says_when_each_row_settles():
    """Typing spreads a row over frames (its first and last settled character); output printed at once
    gives one frame for a run of rows, which the sentence groups."""
    texts = ["$", "$ l", "$ ls", "$ ls", "$ ls\na b\nc\n$", "$ ls\na b\nc\n$"]
    timing = row_timing(texts)
    assert timing == (RowTiming(0, 0, 1, 2), RowTiming(1, 3, 4, 4))
    sentence = timing_sentence(timing, fps=15.0)
    assert sentence == "Timing: line 1 from 0.07 s to 0.13 s; lines 2-4 at 0.27 s."
    assert row_timing(["a\nb", "a\nb"]) == ()  # nothing changes: no timing


@given(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 5), st.integers(0, 74), st.integers(0, 10)),
                min_size=1, max_size=6))
def test_timing_reads_back_to_the_same_frames(items):
    """Seconds with two decimals carry every frame of a 15 fps clip exactly."""
    timing = tuple(RowTiming(r, r + n, s, s + d) for r, n, s, d in items)
    caption = "The user types `echo Timing: x.`. " + timing_sentence(timing, 15.0) + " From line 1 the screen reads:\nTiming: line 1 at 9.00 s."
    assert parse_timing(caption, 15.0) == timing
    assert parse_timing("The user types `ls`. From line 1 the screen reads:\n$ ls", 15.0) == ()


def test_the_commands_a_detailed_caption_types_read_back():
    ctx = CaptionContext(commands=["ls -la", "echo `x` y"], intents=[], task="", first_text="", last_text="$ ls",
                         new_lines=[], full_screen=False)
    caption = TemplateCaptioner().detailed(ctx)
    assert parse_commands(caption)[0] == "ls -la"
    assert parse_commands("From line 1 the screen reads:\nThe user types `rm -rf`.") == ()  # quoted text is not said


def test_the_detailed_tier_gives_timing_and_still_reads_as_the_same_change(tmp_path):
    clip = next(iter_clips(_authored_cast(tmp_path / "a.cast")))
    ctx = context_for(clip, fps=15.0)
    caption = TemplateCaptioner().detailed(ctx)
    assert "Timing: " in caption and parse_timing(caption, 15.0) == ctx.timing
    assert parse_detailed(caption) == screen_change(ctx.first_text, ctx.last_text)
    # `ls` is typed at 0.3-0.4 s (frames 5-6 settle), its output printed at 0.5 s (frame 8)
    assert ctx.timing[0] == RowTiming(0, 0, 5, 6) and any(t.start == t.end == 8 for t in ctx.timing)


def test_a_regular_caption_read_against_the_first_screen_places_its_literal_lines(tmp_path):
    clip = next(iter_clips(_authored_cast(tmp_path / "a.cast")))
    ctx = context_for(clip)
    caps = TemplateCaptioner().caption(ctx)
    placed = parse_regular(caps["regular"], ctx.first_text)
    last = ctx.last_text.split("\n")
    # the first command typed at the prompt, the last new line `hi` three rows below it
    assert placed == {0: "$ ls", 3: "hi"}
    assert all(last[row].rstrip() == line for row, line in placed.items())
    # the other tiers place nothing: their own layout (detailed) or none (semantic)
    assert parse_regular(caps["detailed"], ctx.first_text) == {} == parse_regular(caps["semantic"], ctx.first_text)


def test_regular_hints_complete_a_half_typed_command_and_refuse_to_guess_a_scroll():
    caption = "The user runs `echo hi`. The terminal shows output: 3 new lines, the last reading `$`."
    assert parse_regular(caption, "old\n$ ec\n\n\n") == {1: "$ echo hi", 3: "$"}
    # a row that is neither a prompt nor the command's start: only the last line
    assert parse_regular(caption, "old\nhalf written\n\n\n") == {3: "$"}
    # three new lines from the last of 3 rows would scroll the screen by an amount never said
    assert parse_regular(caption, "a\nb\n$ ") == {}
    assert parse_regular("A full-screen program fills the terminal.", "$ ") == {}


class ShoutingCaptioner:
    """A stand-in for an external (LLM) captioner: the hook must carry its output into the manifest."""

    def caption(self, context):
        return {tier: f"{tier.upper()}: {len(context.new_lines)} new lines" for tier in ("semantic", "regular", "detailed")}


def test_external_captioner_hook(tmp_path):
    from neuralcomputer.data.dataset import load_manifest
    from neuralcomputer.data.terminal.build import render_dataset

    folder = tmp_path / "c"
    folder.mkdir()
    _authored_cast(folder / "a.cast")
    render_dataset([folder], tmp_path / "ds", captioner=ShoutingCaptioner(), progress=False)
    record = load_manifest(tmp_path / "ds")[0]
    assert record["captions"]["semantic"].startswith("SEMANTIC: ")


def test_a_long_step_keeps_its_intent_in_later_windows(tmp_path):
    meta = {"generator": "python", "task": "write a script",
            "steps": [{"intent": "write a small script", "command": "cat > a.py <<'EOF'"}]}
    events = [(0.0, "o", "$ "), (0.1, "m", "write a small script")]
    events += [(0.2 + i * 0.3, "o", "x") for i in range(40)]  # 12 s of typing: three 5 s windows
    clips = list(iter_clips(make_cast(tmp_path / "p.cast", events, x_neuralcomputer=meta)))
    assert len(clips) >= 3
    for clip in clips:
        assert clip.intents == ["write a small script"]
        caps = TemplateCaptioner().caption(context_for(clip, task="write a script"))
        assert "write a small script" in caps["semantic"]
