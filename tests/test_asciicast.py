"""asciicast reading and writing: round trips, real recordings, bad inputs, fuzzing, atomic writes."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neuralcomputer.data.terminal.asciicast import (
    MAX_COLS,
    MAX_EVENT_BYTES,
    MAX_ROWS,
    CastEvent,
    CastHeader,
    CastReader,
    CastWriter,
    read_cast,
    read_header,
    write_cast,
)
from neuralcomputer.data.terminal.build import real_casts_dir
from neuralcomputer.errors import CastError

# ---------------------------------------------------------------------------------------------
# Helpers


def _write_bytes(tmp_path: Path, content: bytes | str, name: str = "t.cast") -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def _cast_lines(header: dict, *events: list) -> str:
    return "\n".join(json.dumps(x) for x in [header, *events]) + "\n"


def _assert_same_recording(
    header: CastHeader, events: list[CastEvent], got_header: CastHeader, got_events: list[CastEvent]
) -> None:
    want = dataclasses.asdict(header)
    have = dataclasses.asdict(got_header)
    want.pop("version")
    have.pop("version")
    assert have == want
    assert len(got_events) == len(events)
    for want_event, got_event in zip(events, got_events, strict=True):
        assert got_event.code == want_event.code
        assert got_event.data == want_event.data
        assert got_event.time == pytest.approx(want_event.time, abs=1e-6)


RICH_EVENTS = [
    CastEvent(0.0, "o", "\x1b[1;31mhello\x1b[0m\r\n"),
    CastEvent(0.1234567, "i", "ls -la\r"),
    CastEvent(0.5, "o", "héllo wörld — 日本語 🙂 \u2028 tab\t bell\x07"),
    CastEvent(0.5, "m", "step 1: list files"),
    CastEvent(1.75, "r", "100x30"),
    CastEvent(2.000001, "o", ""),
    CastEvent(1234.5, "m", ""),
    CastEvent(1300.25, "x", "0"),
]


def _rich_header(term_type: str | None) -> CastHeader:
    return CastHeader(
        version=2,
        width=120,
        height=40,
        timestamp=1714056941,
        duration=1300.25,
        idle_time_limit=2.5,
        command="bash -l",
        title="Démo ✓",
        env={"SHELL": "/bin/bash", "TERM": "xterm-256color"},
        theme={"fg": "#d0d0d0", "bg": "#212121", "palette": ":".join(["#000000"] * 16)},
        term_type=term_type,
        tags=["demo", "nc"],
        extra={"x_neuralcomputer": {"generator": "basic", "seed": 7, "steps": [{"keys": "ls\r"}]}},
    )


# ---------------------------------------------------------------------------------------------
# Round trips


@pytest.mark.parametrize("version", [2, 3])
def test_round_trip(tmp_path: Path, version: int) -> None:
    # v2 has no field for the terminal type (it lives in env["TERM"]), so only v3 carries it.
    header = _rich_header("xterm-256color" if version == 3 else None)
    path = tmp_path / f"rt{version}.cast"
    write_cast(path, header, RICH_EVENTS, version=version)
    got_header, got_events = read_cast(path)
    assert got_header.version == version
    _assert_same_recording(header, RICH_EVENTS, got_header, got_events)
    assert read_header(path) == got_header
    # The file itself is what asciinema writes: one header line, then one event per line.
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1 + len(RICH_EVENTS)
    assert json.loads(lines[0])["x_neuralcomputer"]["seed"] == 7
    assert "日本語" in lines[3]  # non-ASCII stays readable UTF-8, not \\u escapes


def test_write_times_six_decimals_and_v3_intervals(tmp_path: Path) -> None:
    events = [CastEvent(0.1, "o", "a"), CastEvent(0.3, "o", "b"), CastEvent(10.123456789, "o", "c")]
    write_cast(tmp_path / "a.cast", CastHeader(2, 80, 24), events, version=2)
    write_cast(tmp_path / "b.cast", CastHeader(2, 80, 24), events, version=3)
    v2 = [json.loads(x)[0] for x in (tmp_path / "a.cast").read_text().splitlines()[1:]]
    v3 = [json.loads(x)[0] for x in (tmp_path / "b.cast").read_text().splitlines()[1:]]
    assert v2 == [0.1, 0.3, 10.123457]
    assert v3 == [0.1, 0.2, 9.823457]
    header = json.loads((tmp_path / "b.cast").read_text().splitlines()[0])
    assert header == {"version": 3, "term": {"cols": 80, "rows": 24}}


def test_round_trip_many_events_has_no_drift(tmp_path: Path) -> None:
    # v3 stores intervals; summing 10 000 of them must not drift past the 6-decimal precision.
    events = [CastEvent(i * 0.013333333, "o", "x") for i in range(10_000)]
    write_cast(tmp_path / "long.cast", CastHeader(2, 80, 24), events, version=3)
    _, got = read_cast(tmp_path / "long.cast")
    assert max(abs(a.time - b.time) for a, b in zip(events, got, strict=True)) < 1e-6


def test_v3_term_extras_survive_both_versions(tmp_path: Path) -> None:
    text = _cast_lines(
        {
            "version": 3,
            "term": {"cols": 90, "rows": 30, "type": "xterm-ghostty", "version": "ghostty 1.3.1"},
            "x_neuralcomputer": {"a": 1},
            "future_key": [1, 2],
        },
        [0.5, "o", "hi"],
        [0.25, "x", "0"],
    )
    header, events = read_cast(_write_bytes(tmp_path, text))
    assert header.term_type == "xterm-ghostty"
    assert header.extra == {
        "term": {"version": "ghostty 1.3.1"},
        "x_neuralcomputer": {"a": 1},
        "future_key": [1, 2],
    }
    assert [e.time for e in events] == pytest.approx([0.5, 0.75])
    for version in (2, 3):
        write_cast(tmp_path / f"o{version}.cast", header, events, version=version)
        again, _ = read_cast(tmp_path / f"o{version}.cast")
        assert again.extra == header.extra
    assert (
        json.loads((tmp_path / "o3.cast").read_text().splitlines()[0])["term"]["version"] == "ghostty 1.3.1"
    )


def test_v1_pretty_printed_is_read_with_absolute_times(tmp_path: Path) -> None:
    doc = {
        "version": 1,
        "width": 80,
        "height": 24,
        "duration": 1.5,
        "command": "/bin/zsh",
        "title": "",
        "env": {"TERM": "xterm-256color", "SHELL": "/bin/zsh"},
        "stdout": [[0.248848123456789, "hello"], [1.001376, "world"], [0.25, "!"]],
        "x_neuralcomputer": True,
    }
    header, events = read_cast(_write_bytes(tmp_path, json.dumps(doc, indent=2), "v1.json"))
    assert (header.version, header.width, header.height, header.duration) == (1, 80, 24, 1.5)
    assert header.extra == {"x_neuralcomputer": True}
    assert [e.time for e in events] == pytest.approx(
        [0.248848123456789, 1.250224123456789, 1.500224123456789]
    )
    assert {e.code for e in events} == {"o"}
    # The same document on one line is v1 too.
    _, one_line = read_cast(_write_bytes(tmp_path, json.dumps(doc), "v1-compact.json"))
    assert one_line == events


def test_v3_comments_blank_lines_and_crlf(tmp_path: Path) -> None:
    text = (
        '{"version": 3, "term": {"cols": 80, "rows": 24}}\r\n'
        "# event stream follows the header\r\n"
        "\r\n"
        '[0.5, "o", "a"]\r\n'
        "  # indented comment\n"
        '[1.0, "r", "90x30"]'  # no newline at the end of the file is fine
    )
    _, events = read_cast(_write_bytes(tmp_path, text))
    assert events == [CastEvent(0.5, "o", "a"), CastEvent(1.5, "r", "90x30")]


def test_unknown_codes_skipped_when_not_strict(tmp_path: Path) -> None:
    path = _write_bytes(
        tmp_path, _cast_lines({"version": 2, "width": 80, "height": 24}, [0, "o", "a"], [1, "q", "?"])
    )
    with pytest.raises(CastError, match=r"t\.cast:3: unknown event code 'q'"):
        read_cast(path)
    _, events = read_cast(path, strict=False)
    assert events == [CastEvent(0, "o", "a")]


def test_reader_is_lazy_and_restartable(tmp_path: Path) -> None:
    path = _write_bytes(
        tmp_path,
        _cast_lines({"version": 2, "width": 80, "height": 24}, [0, "o", "a"], [1, "o", "b"]) + "oops\n",
    )
    with CastReader(path) as reader:  # the header is fine; the bad line only shows while iterating
        assert reader.header.width == 80
        seen = []
        with pytest.raises(CastError, match=r":4: invalid JSON"):
            for event in reader:
                seen.append(event.data)
        assert seen == ["a", "b"]
        assert next(iter(reader)).data == "a"  # a new iteration starts over


def test_env_null_values_are_dropped(tmp_path: Path) -> None:
    # Seen in a real recording (encodeous/nylon): "SHELL": null.
    header = {"version": 2, "width": 80, "height": 24, "env": {"SHELL": None, "TERM": "xterm"}}
    got, _ = read_cast(_write_bytes(tmp_path, _cast_lines(header)))
    assert got.env == {"TERM": "xterm"}


# ---------------------------------------------------------------------------------------------
# Real recordings


def _real_casts_dir() -> Path:
    return real_casts_dir()


def _real_casts() -> list[Path]:
    folder = _real_casts_dir()
    if not folder.is_dir():
        return []
    return sorted({p for pattern in ("*.cast", "*.json", "*.asciicast") for p in folder.glob(pattern)})


def _manifest() -> dict[str, dict[str, str]]:
    manifest = _real_casts_dir() / "MANIFEST.tsv"
    if not manifest.is_file():
        return {}
    with manifest.open(encoding="utf-8", newline="") as f:
        return {row["file"]: row for row in csv.DictReader(f, delimiter="\t")}


@pytest.mark.parametrize(
    "cast_path",
    _real_casts()
    or [pytest.param(None, marks=pytest.mark.skip(reason="no real-casts folder (set NC_REAL_CASTS)"))],
    ids=lambda p: p.name if isinstance(p, Path) else "none",
)
def test_real_cast_reads_and_matches_manifest(cast_path: Path) -> None:
    header, events = read_cast(cast_path)
    assert events, "a real recording has events"
    assert all(b.time >= a.time for a, b in zip(events, events[1:], strict=False))
    row = _manifest().get(cast_path.name)
    if row is None:
        pytest.skip(f"{cast_path.name} is not in MANIFEST.tsv")
    assert (header.version, header.width, header.height) == (
        int(row["version"]),
        int(row["width"]),
        int(row["height"]),
    )
    # The manifest counts every event, whatever its code (o, i, m, x), and its duration_s is the
    # time of the last event, rounded to 0.01 s.
    assert len(events) == int(row["n_events"]), (
        f"{cast_path.name}: read {len(events)}, manifest {row['n_events']}"
    )
    assert events[-1].time == pytest.approx(float(row["duration_s"]), abs=0.006)


def test_real_casts_round_trip_through_the_writer(tmp_path: Path) -> None:
    casts = _real_casts()
    if not casts:
        pytest.skip("no real-casts folder (set NC_REAL_CASTS)")
    for cast_path in casts:
        header, events = read_cast(cast_path)
        # The writer rounds times to the microsecond, so any real file comes back within 1e-6 s.
        version = 3 if header.version == 3 else 2
        out = tmp_path / cast_path.name
        write_cast(out, header, events, version=version)
        got_header, got_events = read_cast(out)
        if header.version == 1:  # v1 is written as v2; only its version number changes
            header = dataclasses.replace(header, version=2)
        _assert_same_recording(header, events, got_header, got_events)


# ---------------------------------------------------------------------------------------------
# Bad inputs: one CastError naming the file and the line


V2 = '{"version": 2, "width": 80, "height": 24}\n'

BAD_INPUTS: dict[str, tuple[bytes, int, str]] = {
    # name: (file content, line in the message, part of the message)
    "truncated": ((V2 + '[0.5, "o", "a"]\n[1.0, "o", "hel').encode(), 3, "truncated event"),
    "truncated_header": (b'{"version": 2, "width": 80, "hei', 1, "truncated"),
    "non_utf8": ((V2 + '[0.5, "o", "a"]\n').encode() + b'[1.0, "o", "\xff\xfe"]\n', 3, "invalid UTF-8"),
    "non_utf8_header": (
        b'{"version": 2, "title": "\xc3\x28", "width": 80, "height": 24}\n',
        1,
        "invalid UTF-8",
    ),
    "non_json_line": ((V2 + "[0.5, 'o', 'a']\n").encode(), 2, "invalid JSON"),
    "wrong_version": (
        b'{"version": 7, "width": 80, "height": 24}\n',
        1,
        "unsupported asciicast version 7 (expected 1, 2 or 3)",
    ),
    "version_as_string": (
        b'{"version": "2", "width": 80, "height": 24}\n',
        1,
        "unsupported asciicast version",
    ),
    "missing_version": (b'{"width": 80, "height": 24}\n', 1, "no 'version'"),
    "negative_time": ((V2 + '[0.5, "o", "a"]\n[-1, "o", "b"]\n').encode(), 3, "negative"),
    "nan_time": ((V2 + '[NaN, "o", "a"]\n').encode(), 2, "not a finite number"),
    "decreasing_time": (
        (V2 + '[4.0, "o", "a"]\n[3.1, "o", "b"]\n').encode(),
        3,
        "event time 3.1 is before the previous event (4.0)",
    ),
    "negative_v3_interval": (
        b'{"version": 3, "term": {"cols": 80, "rows": 24}}\n[0.1, "o", "a"]\n[-0.1, "o", "b"]\n',
        3,
        "negative",
    ),
    "absurd_columns": (b'{"version": 2, "width": 100000, "height": 24}\n', 1, "width 100000 is out of range"),
    "absurd_v3_rows": (
        b'{"version": 3, "term": {"cols": 80, "rows": 9999}}\n',
        1,
        "term.rows 9999 is out of range",
    ),
    "zero_width": (b'{"version": 2, "width": 0, "height": 24}\n', 1, "width 0 is out of range"),
    "float_width": (b'{"version": 2, "width": 80.5, "height": 24}\n', 1, "width must be a positive integer"),
    "v3_without_term": (b'{"version": 3, "width": 80, "height": 24}\n', 1, "needs 'term'"),
    "bad_resize_data": ((V2 + '[0.5, "r", "80 by 24"]\n').encode(), 2, "not COLSxROWS"),
    "absurd_resize": ((V2 + '[0.5, "r", "100000x24"]\n').encode(), 2, "resize cols 100000 is out of range"),
    "unicode_digit_resize": ((V2 + '[0.5, "r", "\\u0668\\u0660x24"]\n').encode(), 2, "not COLSxROWS"),
    "empty_file": (b"", 1, "empty file, expected an asciicast header"),
    "blank_file": (b"\n  \n\n", 1, "empty file"),
    "header_not_object": (
        b'[0.5, "o", "a"]\n',
        1,
        "expected an asciicast header (a JSON object), got an array",
    ),
    "header_is_text": (b"hello world\n", 1, "expected an asciicast header"),
    "header_is_comment": (
        b'# comment\n{"version": 3, "term": {"cols": 80, "rows": 24}}\n',
        1,
        "found a comment",
    ),
    "event_wrong_arity": (
        (V2 + '[0.5, "o", "a"]\n[0.6, "o"]\n').encode(),
        3,
        "expected an event [time, code, data]",
    ),
    "event_not_array": ((V2 + '{"t": 1}\n').encode(), 2, "expected an event"),
    "event_time_string": ((V2 + '["0.5", "o", "a"]\n').encode(), 2, "event time must be a number"),
    "event_time_bool": ((V2 + '[true, "o", "a"]\n').encode(), 2, "event time must be a number"),
    "event_data_number": ((V2 + '[0.5, "o", 5]\n').encode(), 2, "event data must be a string"),
    "huge_integer_time": ((V2 + "[1" + "0" * 400 + ', "o", "a"]\n').encode(), 2, "not a finite number"),
    "deep_nesting": ((V2 + "[" * 100_000 + "]" * 100_000 + "\n").encode(), 2, "invalid JSON"),
    "comment_in_v2": ((V2 + "# not allowed in v2\n").encode(), 2, "invalid JSON"),
    "multi_line_v2_header": (
        b'{\n  "version": 2,\n  "width": 80,\n  "height": 24\n}\n',
        1,
        "only asciicast v1",
    ),
    "pretty_v2_header_with_events": (
        b'{\n  "version": 2,\n  "width": 80,\n  "height": 24\n}\n[0.5, "o", "a"]\n',
        1,
        "only asciicast v1",
    ),
    "v1_trailing_data": (
        b'{"version": 1, "width": 80, "height": 24, "stdout": []}\n[0.5, "o", "a"]\n',
        2,
        "unexpected data",
    ),
    "v1_bad_frame": (
        b'{\n  "version": 1, "width": 80, "height": 24,\n  "stdout": [\n    [0.1, "a"],\n    [0.2]\n  ]\n}\n',
        5,
        "expected a stdout frame",
    ),
    "v1_negative_delay": (
        b'{\n  "version": 1, "width": 80, "height": 24,\n  "stdout": [\n    [0.1, "a"],\n    [-0.2, "b"]\n  ]\n}\n',
        5,
        "frame delay -0.2 is negative",
    ),
    "v1_truncated": (
        b'{\n  "version": 1, "width": 80, "height": 24,\n  "stdout": [\n    [0.1, "a"],\n    [0.2, "b',
        5,
        "truncated",
    ),
    "v1_no_stdout": (b'{\n  "version": 1,\n  "width": 80,\n  "height": 24\n}\n', 1, "no 'stdout'"),
    "v1_non_utf8": (
        b'{\n  "version": 1, "width": 80, "height": 24,\n  "stdout": [[0.1, "\xff"]]\n}\n',
        3,
        "invalid UTF-8",
    ),
    "v1_absurd_width": (
        b'{\n  "version": 1,\n  "width": 5000,\n  "height": 24, "stdout": []\n}\n',
        3,
        "width 5000 is out of range",
    ),
    "bad_env": (
        b'{"version": 2, "width": 80, "height": 24, "env": {"A": 1}}\n',
        1,
        "env['A'] must be a string",
    ),
    "bad_theme": (
        b'{"version": 2, "width": 80, "height": 24, "theme": "dark"}\n',
        1,
        "theme must be an object",
    ),
    "bad_idle_limit": (
        b'{"version": 2, "width": 80, "height": 24, "idle_time_limit": -2}\n',
        1,
        "idle_time_limit",
    ),
    "oversized_event": (
        (V2 + json.dumps([0.5, "o", "x" * (MAX_EVENT_BYTES + 1)]) + "\n").encode(),
        2,
        "longer than",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_names_file_and_line(tmp_path: Path, name: str) -> None:
    content, line, problem = BAD_INPUTS[name]
    path = _write_bytes(tmp_path, content, f"{name}.cast")
    with pytest.raises(CastError) as info:
        read_cast(path)
    err = info.value
    assert err.path == str(path)
    assert err.line == line, str(err)
    assert str(err).startswith(f"{path}:{line}: "), str(err)
    assert problem in err.problem, str(err)


def test_utf8_bom_is_tolerated(tmp_path: Path) -> None:
    # Editors on Windows prepend a byte-order mark; it is not part of the JSON.
    path = _write_bytes(
        tmp_path, b"\xef\xbb\xbf" + _cast_lines({"version": 2, "width": 80, "height": 24}).encode()
    )
    assert read_header(path).width == 80


def test_v1_size_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from neuralcomputer.data.terminal import asciicast

    doc = json.dumps({"version": 1, "width": 80, "height": 24, "stdout": [[0.1, "x" * 200]]}, indent=2)
    path = _write_bytes(tmp_path, doc, "big.json")
    monkeypatch.setattr(asciicast, "MAX_V1_BYTES", 100)
    with pytest.raises(CastError, match=r"big\.json:1: .*too large to read as an asciicast v1"):
        read_cast(path)


def test_missing_file_is_a_cast_error(tmp_path: Path) -> None:
    with pytest.raises(CastError, match="cannot open"):
        read_header(tmp_path / "nope.cast")
    with pytest.raises(CastError, match="cannot"):
        read_header(tmp_path)  # a directory


def test_limits_are_the_documented_ones(tmp_path: Path) -> None:
    ok = {"version": 2, "width": MAX_COLS, "height": MAX_ROWS}
    assert read_header(_write_bytes(tmp_path, _cast_lines(ok))).width == MAX_COLS
    with pytest.raises(CastError, match="out of range"):
        read_header(_write_bytes(tmp_path, _cast_lines({**ok, "width": MAX_COLS + 1})))


# ---------------------------------------------------------------------------------------------
# Fuzzing: any bytes either read or raise CastError, never anything else


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder for all examples (hypothesis refuses function-scoped fixtures such as tmp_path)."""
    return tmp_path_factory.mktemp("fuzz")


_FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _read_everything(folder: Path, content: bytes, strict: bool = True) -> None:
    path = folder / "fuzz.cast"
    path.write_bytes(content)
    try:
        with CastReader(path, strict=strict) as reader:
            for event in reader:
                assert isinstance(event.time, float | int) and event.time >= 0
                assert event.code in "oimrx" and isinstance(event.data, str)
    except CastError as exc:
        assert exc.line is not None and exc.line >= 1
        assert str(exc).startswith(f"{path}:{exc.line}: ")


# Bytes drawn from JSON's own alphabet get much further into the parser than uniform bytes.
_json_ish_text = st.text(alphabet='{}[]",:0123456789.-+eE \t\r\n#\\uxoimrvsnlt', max_size=300)


@_FUZZ
@given(st.binary(max_size=400) | _json_ish_text.map(str.encode))
def test_fuzz_arbitrary_bytes(fuzz_dir: Path, content: bytes) -> None:
    _read_everything(fuzz_dir, content)


_json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
)
_json_value = st.recursive(
    _json_scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


def _mostly(valid: st.SearchStrategy, invalid: st.SearchStrategy) -> st.SearchStrategy:
    """Valid about 3 times in 4, so that most examples get past the header into the events."""
    # not one_of(valid, valid, valid, invalid): one_of drops repeated branches
    return st.sampled_from([valid, valid, valid, invalid]).flatmap(lambda strategy: strategy)


_size = _mostly(
    st.integers(min_value=1, max_value=200), st.integers(min_value=-2, max_value=1200) | _json_scalar
)
_time = _mostly(
    st.floats(min_value=0, max_value=1e4), st.integers(min_value=-1, max_value=100) | _json_scalar
)
_code = _mostly(st.sampled_from(["o", "i", "m", "r", "x"]), st.sampled_from(["q", "", "oo"]) | _json_scalar)
_data = _mostly(
    st.text(max_size=12) | st.sampled_from(["80x24", "1x1", "1000x500"]),
    st.sampled_from(["0x0", "1001x24", "x", "12x", "80x24\n"]) | _json_scalar,
)
_event = _mostly(st.tuples(_time, _code, _data).map(list), st.lists(_json_value, max_size=4) | _json_value)
_optional_header = {
    "timestamp": _mostly(st.integers(0, 2**31), _json_scalar),
    "duration": _mostly(st.floats(0, 1e4), _json_scalar),
    "idle_time_limit": _mostly(st.floats(0, 10), _json_scalar),
    "title": _mostly(st.text(max_size=8), _json_scalar),
    "env": st.dictionaries(st.text(max_size=4), _mostly(st.text(max_size=4), _json_scalar), max_size=3),
    "theme": _mostly(st.dictionaries(st.text(max_size=4), st.text(max_size=8), max_size=3), _json_value),
    "tags": _mostly(st.lists(st.text(max_size=4), max_size=3), _json_value),
    "x_neuralcomputer": _json_value,
}


@st.composite
def _near_valid_cast(draw: Callable) -> bytes:
    """A random header and events, mostly well-formed, then possibly damaged at one byte."""
    version = draw(_mostly(st.sampled_from([1, 2, 3]), st.sampled_from([0, 4, "2", None, 2.0, True])))
    header: dict = {"version": version}
    if version == 3 or draw(st.booleans()):
        term_type = _mostly(st.text(max_size=6), _json_scalar)
        term = {"cols": _size, "rows": _size}
        header["term"] = draw(st.fixed_dictionaries(term, optional={"type": term_type, "theme": _json_value}))
    if version != 3 or draw(st.booleans()):
        header["width"], header["height"] = draw(_size), draw(_size)
    header.update(draw(st.fixed_dictionaries({}, optional=_optional_header)))
    events = draw(st.lists(_event, max_size=8))
    if draw(st.booleans()):  # v2 needs non-decreasing times: sort them half of the time
        timed = [e for e in events if isinstance(e, list) and len(e) == 3 and isinstance(e[0], float)]
        timed.sort(key=lambda e: e[0])
        events = timed or events
    if version == 1:
        frames = [[e[0], e[2]] if isinstance(e, list) and len(e) == 3 else e for e in events]
        text = json.dumps({**header, "stdout": frames}, indent=draw(st.sampled_from([None, 2])))
    else:
        ascii_only = draw(st.booleans())
        text = "\n".join(json.dumps(x, ensure_ascii=ascii_only) for x in [header, *events]) + "\n"
    content = text.encode("utf-8", "surrogatepass")  # a raw lone surrogate makes invalid UTF-8
    # Damage it: cut the file short, change a byte, or insert a stray line.
    mutation = draw(st.sampled_from(["none", "none", "truncate", "flip", "insert"]))
    if content and mutation != "none":
        at = draw(st.integers(min_value=0, max_value=len(content) - 1))
        if mutation == "truncate":
            content = content[:at]
        elif mutation == "flip":
            content = content[:at] + bytes([draw(st.integers(0, 255))]) + content[at + 1 :]
        else:
            stray = draw(st.sampled_from([b"\n", b"\n# c\n", b"\n\n", b"\xff", b"{", b"]"]))
            content = content[:at] + stray + content[at:]
    return content


@_FUZZ
@given(_near_valid_cast(), st.booleans())
def test_fuzz_near_valid_casts(fuzz_dir: Path, content: bytes, strict: bool) -> None:
    _read_everything(fuzz_dir, content, strict=strict)


@_FUZZ
@given(
    st.lists(
        st.tuples(
            st.floats(min_value=0, max_value=5, allow_nan=False),
            st.sampled_from(["o", "i", "m", "x"]),
            st.text(max_size=10),
        ),
        max_size=12,
    ),
    st.sampled_from([2, 3]),
)
def test_fuzz_written_casts_read_back(
    fuzz_dir: Path, deltas: list[tuple[float, str, str]], version: int
) -> None:
    time, events = 0.0, []
    for delta, code, data in deltas:
        time += delta
        events.append(CastEvent(time, code, data))  # lone surrogates included: JSON can carry them
    path = fuzz_dir / f"written{version}.cast"
    write_cast(
        path, CastHeader(2, 80, 24, extra={"x_neuralcomputer": {"n": len(events)}}), events, version=version
    )
    header, got = read_cast(path)
    assert header.extra == {"x_neuralcomputer": {"n": len(events)}}
    assert [(e.code, e.data) for e in got] == [(e.code, e.data) for e in events]
    assert all(abs(a.time - b.time) <= 1e-6 for a, b in zip(got, events, strict=True))


# ---------------------------------------------------------------------------------------------
# Atomic writing


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_writer_leaves_nothing_on_exception(tmp_path: Path) -> None:
    dest = tmp_path / "out.cast"
    with pytest.raises(RuntimeError), CastWriter(dest, CastHeader(2, 80, 24)) as writer:
        writer.write(CastEvent(0.1, "o", "a"))
        assert _leftovers(tmp_path) != []  # a temp file exists while writing ...
        assert not dest.exists()  # ... but never the destination, half-written
        raise RuntimeError("recorder crashed")
    assert _leftovers(tmp_path) == []


def test_writer_keeps_old_destination_on_failure(tmp_path: Path) -> None:
    dest = tmp_path / "out.cast"
    write_cast(dest, CastHeader(2, 80, 24), [CastEvent(0, "o", "old")])
    before = dest.read_bytes()
    with pytest.raises(CastError, match=r"out\.cast:3: event time 0\.5 is before the previous event"):
        write_cast(dest, CastHeader(2, 80, 24), [CastEvent(1, "o", "new"), CastEvent(0.5, "o", "x")])
    assert dest.read_bytes() == before
    assert _leftovers(tmp_path) == ["out.cast"]


@pytest.mark.parametrize(
    ("event", "problem"),
    [
        (CastEvent(-1, "o", "a"), "negative"),
        (CastEvent(float("nan"), "o", "a"), "finite"),
        (CastEvent(0, "z", "a"), "unknown event code"),
        (CastEvent(0, "r", "80,24"), "COLSxROWS"),
    ],
)
def test_writer_refuses_events_it_could_not_read_back(tmp_path: Path, event: CastEvent, problem: str) -> None:
    with pytest.raises(CastError, match=problem):
        write_cast(tmp_path / "bad.cast", CastHeader(2, 80, 24), [event])
    assert _leftovers(tmp_path) == []


def test_writer_refuses_bad_headers(tmp_path: Path) -> None:
    with pytest.raises(CastError, match="width 0 is out of range"):
        CastWriter(tmp_path / "a.cast", CastHeader(2, 0, 24))
    with pytest.raises(CastError, match="cannot be written as JSON"):
        CastWriter(tmp_path / "b.cast", CastHeader(2, 80, 24, extra={"x": object()}))
    with pytest.raises(ValueError, match="version 2 or 3"):
        CastWriter(tmp_path / "c.cast", CastHeader(2, 80, 24), version=1)
    assert _leftovers(tmp_path) == []


def test_unclosed_writer_is_cleaned_up(tmp_path: Path) -> None:
    writer = CastWriter(tmp_path / "out.cast", CastHeader(2, 80, 24))
    writer.write(CastEvent(0, "o", "a"))
    del writer  # dropped without close(), e.g. by an exception outside a with-block
    assert _leftovers(tmp_path) == []


def test_writer_replaces_atomically_and_uses_umask_mode(tmp_path: Path) -> None:
    dest = tmp_path / "out.cast"
    with CastWriter(dest, CastHeader(2, 80, 24)) as writer:
        writer.write(CastEvent(0, "o", "a"))
    assert _leftovers(tmp_path) == ["out.cast"]
    umask = os.umask(0)
    os.umask(umask)
    assert dest.stat().st_mode & 0o777 == 0o666 & ~umask
