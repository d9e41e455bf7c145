"""Read and write asciinema recordings (asciicast v1, v2 and v3).

Formats (https://docs.asciinema.org/manual/asciicast/):

* v1: one JSON object, often pretty-printed over many lines, whose ``stdout`` holds
  ``[delay, data]`` frames; each delay is relative to the previous frame.
* v2: newline-delimited JSON: a header object on the first line, then one ``[time, code, data]``
  array per line, ``time`` in absolute seconds from the start.
* v3: like v2, but the size lives in ``header.term`` and each event carries the *interval* since
  the previous event; lines starting with ``#`` are comments.

Whatever the version, :class:`CastEvent.time` is always absolute seconds from the start. Every
problem with a file becomes a :class:`~neuralcomputer.errors.CastError` that names the file, the
1-based line and what was expected; no other exception escapes the reader, whatever the bytes.

Written by hand because the only Python library, ``asciinema`` 2.x, reads neither v3 nor errors
with line numbers, and it is a recorder CLI rather than a library with a stable API.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import secrets
import weakref
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import IO, Any

from neuralcomputer.errors import CastError

__all__ = [
    "EVENT_CODES",
    "MAX_COLS",
    "MAX_EVENT_BYTES",
    "MAX_ROWS",
    "MAX_V1_BYTES",
    "CastEvent",
    "CastHeader",
    "CastReader",
    "CastWriter",
    "read_cast",
    "read_header",
    "write_cast",
]

MAX_COLS = 1000
MAX_ROWS = 500
MAX_EVENT_BYTES = 4 * 1024 * 1024
MAX_V1_BYTES = 256 * 1024 * 1024  # v1 must be parsed whole, so its size is bounded
EVENT_CODES = frozenset("oimrx")  # output, input, marker, resize, exit

# JSON escapes a control byte as six characters (\u001b), so a legal event line can be ~6x its data.
_MAX_LINE_BYTES = 6 * MAX_EVENT_BYTES + 64 * 1024
_JSON_WS = " \t\r\n"  # str.strip() would also eat \x1c..\x1f and U+2028, which JSON does not allow
_BOM = b"\xef\xbb\xbf"
_RESIZE = re.compile(r"([0-9]{1,9})x([0-9]{1,9})")  # [0-9], not \d: \d accepts every Unicode digit
_WS_RUN = re.compile(r"[ \t\r\n]*")
_DECODER = json.JSONDecoder()
_LINE_BREAK_ESCAPES = {0x85: "\\u0085", 0x2028: "\\u2028", 0x2029: "\\u2029"}

# Header keys with a CastHeader field; anything else is kept verbatim in CastHeader.extra.
_COMMON_KEYS = frozenset(
    {"version", "timestamp", "duration", "idle_time_limit", "command", "title", "env", "tags"}
)
_KNOWN_KEYS = {
    1: _COMMON_KEYS | {"width", "height", "stdout"},
    2: _COMMON_KEYS | {"width", "height", "theme"},
    3: _COMMON_KEYS | {"term"},
}
_TERM_KEYS = frozenset({"cols", "rows", "type", "theme"})


@dataclass(frozen=True)
class CastHeader:
    """Recording metadata, the same for every asciicast version.

    Attributes:
        version: 1, 2 or 3, as read (a writer chooses its own output version).
        width, height: initial terminal size in columns and rows (v3: ``term.cols``/``term.rows``).
        timestamp: Unix time the recording started.
        duration: total length in seconds, when the file states it.
        idle_time_limit: pauses longer than this should be shortened on playback (seconds).
        command, title: what was recorded and its title.
        env: captured environment variables (``SHELL``, ``TERM``); ``null`` values are dropped.
        theme: terminal colours (``fg``, ``bg``, ``palette``), v2 top-level or v3 ``term.theme``.
        term_type: v3 ``term.type`` (v2 keeps it in ``env["TERM"]``).
        tags: v3 tags.
        extra: unknown header keys, preserved and written back (e.g. ``"x_neuralcomputer"``).
            Unknown keys of the v3 ``term`` object (such as ``term.version``) are kept under
            ``extra["term"]``.
    """

    version: int
    width: int
    height: int
    timestamp: int | None = None
    duration: float | None = None
    idle_time_limit: float | None = None
    command: str | None = None
    title: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    theme: dict | None = None
    term_type: str | None = None
    tags: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class CastEvent:
    """One timed event of a recording.

    Attributes:
        time: absolute seconds from the start, for every version (v1/v3 deltas are accumulated).
        code: ``'o'`` output, ``'i'`` input, ``'m'`` marker, ``'r'`` resize (data ``"COLSxROWS"``),
            ``'x'`` exit (data is the exit status as a string).
        data: the text; for ``'o'``/``'i'`` already-decoded characters, not bytes.
    """

    time: float
    code: str
    data: str


# ---------------------------------------------------------------------------------------------
# Validation shared by the reader and the writer


def _describe(value: Any) -> str:
    """A short description of a decoded JSON value for an error message.

    Containers are summarised, not repr'd: a deeply nested one would hit the recursion limit.
    """
    if value is None:
        return "null"
    if type(value) is bool:
        return f"a boolean {'true' if value else 'false'}"
    if type(value) is str:
        return f"a string {value[:40]!r}" + ("..." if len(value) > 40 else "")
    if type(value) is list:
        return f"an array of {len(value)} items"
    if type(value) is dict:
        return f"an object with {len(value)} keys"
    if type(value) is int and abs(value) >= 10**30:
        return "a huge integer"
    return f"a number {value!r}"


def _json_problem(exc: ValueError | RecursionError) -> str:
    """What the JSON decoder disliked, without the parts that are only noise in a one-line message."""
    if isinstance(exc, json.JSONDecodeError):
        # json says "Unterminated string starting at: line 1 column 5 (char 4)"; keep the column.
        return f"{exc.msg.removesuffix(' at')} at column {exc.colno}"
    if isinstance(exc, RecursionError):
        return "values nested too deeply"
    return str(exc)[:80]  # e.g. an integer literal with more than 4300 digits


def _number(value: Any) -> float | None:
    """``value`` as a float if it is a JSON number (a bool is not), else None.

    An int too large for a float becomes ``inf`` so that the finiteness check rejects it
    (``float(10**400)`` would raise OverflowError).
    """
    if type(value) is float:
        return value
    if type(value) is int:
        try:
            return float(value)
        except OverflowError:
            return math.inf
    return None


def _size_problem(value: Any, name: str, limit: int) -> str | None:
    """Why ``value`` is not a terminal dimension in 1..limit, or None when it is."""
    if type(value) is not int:
        return f"{name} must be a positive integer, got {_describe(value)}"
    if not 1 <= value <= limit:
        shown = value if abs(value) < 10**30 else "<huge integer>"
        return f"{name} {shown} is out of range (expected an integer from 1 to {limit})"
    return None


def _event_problem(stamp: Any, code: Any, data: Any, *, strict: bool) -> str | None:
    """Why an event ``[stamp, code, data]`` is invalid, or None; unknown codes only when ``strict``."""
    time = _number(stamp)
    if time is None:
        return f"event time must be a number, got {_describe(stamp)}"
    if not math.isfinite(time):
        return f"event time {time} is not a finite number"
    if time < 0:
        return f"event time {time} is negative (expected >= 0)"
    if type(code) is not str:
        return f"event code must be a string, got {_describe(code)}"
    if type(data) is not str:
        return f"event data must be a string, got {_describe(data)}"
    # len() counts characters; only a string that could be over the limit is encoded to count bytes.
    if len(data) * 4 > MAX_EVENT_BYTES and len(data.encode("utf-8", "surrogatepass")) > MAX_EVENT_BYTES:
        return f"event data is longer than {MAX_EVENT_BYTES} bytes"
    if code not in EVENT_CODES:
        if strict:
            return f"unknown event code {code[:20]!r} (expected one of 'o', 'i', 'm', 'r', 'x')"
        return None
    if code == "r":
        match = _RESIZE.fullmatch(data)
        if match is None:
            return f"resize data {data[:40]!r} is not COLSxROWS (e.g. '80x24')"
        cols, rows = int(match[1]), int(match[2])
        problem = _size_problem(cols, "resize cols", MAX_COLS) or _size_problem(rows, "resize rows", MAX_ROWS)
        if problem is not None:
            return problem
    return None


def _parse_header(
    obj: Any,
    path: str,
    line: int,
    *,
    strict: bool,
    key_lines: Mapping[str, int] | None = None,
) -> CastHeader:
    """Validate a decoded header object and build the :class:`CastHeader`.

    ``key_lines`` gives the line of each key's value (pretty-printed v1); otherwise every problem
    is reported on ``line``.
    """

    def fail(problem: str, key: str | None = None) -> CastError:
        where = key_lines.get(key, line) if key_lines is not None and key is not None else line
        return CastError(path, where, problem)

    if type(obj) is not dict:
        raise fail(f"expected an asciicast header (a JSON object), got {_describe(obj)}")
    if "version" not in obj:
        raise fail("header has no 'version' (expected 1, 2 or 3)")
    version = obj["version"]
    if type(version) is not int or version not in (1, 2, 3):
        shown = version if type(version) is int and abs(version) < 10**30 else _describe(version)
        raise fail(f"unsupported asciicast version {shown} (expected 1, 2 or 3)", "version")

    theme: Any = None
    term_type: Any = None
    extra: dict[str, Any] = {k: v for k, v in obj.items() if k not in _KNOWN_KEYS[version]}
    if version == 3:
        term = obj.get("term")
        if type(term) is not dict:
            raise fail(f"v3 header needs 'term' as an object with cols and rows, got {_describe(term)}")
        width, height = term.get("cols"), term.get("rows")
        problem = _size_problem(width, "term.cols", MAX_COLS) or _size_problem(height, "term.rows", MAX_ROWS)
        term_type, theme = term.get("type"), term.get("theme")
        if term_type is not None and type(term_type) is not str:
            raise fail(f"term.type must be a string, got {_describe(term_type)}")
        term_extra = {k: v for k, v in term.items() if k not in _TERM_KEYS}
        if term_extra:
            extra["term"] = term_extra
    else:
        width, height = obj.get("width"), obj.get("height")
        problem = _size_problem(width, "width", MAX_COLS) or _size_problem(height, "height", MAX_ROWS)
        theme = obj.get("theme") if version == 2 else None
    if problem is not None:
        raise fail(problem, "width" if "width" in problem else "height")
    if theme is not None and type(theme) is not dict:
        name = "term.theme" if version == 3 else "theme"
        raise fail(f"{name} must be an object, got {_describe(theme)}", "theme")

    timestamp = obj.get("timestamp")
    if timestamp is not None:
        as_float = _number(timestamp)
        if as_float is None or not math.isfinite(as_float):
            raise fail(f"timestamp must be a Unix time in seconds, got {_describe(timestamp)}", "timestamp")
        timestamp = int(timestamp)  # some writers emit floats; the spec says integer

    seconds: dict[str, float | None] = {}
    for key in ("duration", "idle_time_limit"):
        value = obj.get(key)
        as_float = _number(value)
        if value is not None and (as_float is None or not math.isfinite(as_float) or as_float < 0):
            raise fail(f"{key} must be a number of seconds >= 0, got {_describe(value)}", key)
        seconds[key] = as_float

    texts: dict[str, str | None] = {}
    for key in ("command", "title"):
        value = obj.get(key)
        if value is not None and type(value) is not str:
            raise fail(f"{key} must be a string, got {_describe(value)}", key)
        texts[key] = value

    env_obj = obj.get("env")
    if env_obj is not None and type(env_obj) is not dict:
        raise fail(f"env must be an object of strings, got {_describe(env_obj)}", "env")
    env: dict[str, str] = {}
    for key, value in (env_obj or {}).items():
        if type(value) is str:
            env[key] = value
        elif value is not None and strict:  # null is seen in real casts ("SHELL": null): dropped
            raise fail(f"env[{key[:40]!r}] must be a string, got {_describe(value)}", "env")

    tags = obj.get("tags")
    if tags is None:
        tags = []
    elif type(tags) is not list or not all(type(tag) is str for tag in tags):
        raise fail(f"tags must be an array of strings, got {_describe(tags)}", "tags")

    return CastHeader(
        version=version,
        width=width,
        height=height,
        timestamp=timestamp,
        duration=seconds["duration"],
        idle_time_limit=seconds["idle_time_limit"],
        command=texts["command"],
        title=texts["title"],
        env=env,
        theme=theme,
        term_type=term_type,
        tags=list(tags),
        extra=extra,
    )


# ---------------------------------------------------------------------------------------------
# v1: one JSON object, walked value by value so every frame knows its line


class _LineCounter:
    """Line number of a position in a text, counted incrementally for forward-moving positions."""

    def __init__(self, text: str) -> None:
        self.text, self.pos, self.line = text, 0, 1

    def at(self, pos: int) -> int:
        if pos < self.pos:
            self.pos, self.line = 0, 1
        self.line += self.text.count("\n", self.pos, pos)
        self.pos = pos
        return self.line


def _walk_v1(
    text: str, path: str
) -> tuple[dict[str, Any], dict[str, int], list[tuple[int, Any]] | None, int | None]:
    """Parse a v1 document: (top-level object, line of each key's value, stdout frames with lines,
    line of any data after the object).

    json.loads would lose the line of each frame, which the error messages need, so the top-level
    object and the ``stdout`` array are walked here and each value is decoded by the C scanner.
    Frames are None when ``stdout`` is missing or not an array (left in the object to report).
    """
    lines = _LineCounter(text)
    end = len(text)

    def fail(pos: int, problem: str) -> CastError:
        if pos >= end:
            problem += " (the file ends here: truncated?)"
        return CastError(path, lines.at(pos), problem)

    def skip(pos: int) -> int:
        return _WS_RUN.match(text, pos).end()  # type: ignore[union-attr]  # always matches

    def value_at(pos: int, what: str) -> tuple[Any, int]:
        try:
            return _DECODER.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            # An unterminated string always runs to the end of the text (a raw newline inside a
            # string is a different error), so both cases mean the file was cut short.
            cut = exc.pos >= end or exc.msg.startswith("Unterminated string")
            hint = " (the file ends here: truncated?)" if cut else ""
            raise CastError(path, exc.lineno, f"invalid JSON in {what}: {_json_problem(exc)}{hint}") from None
        except (ValueError, RecursionError) as exc:  # e.g. a 5000-digit integer, or [[[[... nesting
            raise fail(pos, f"invalid JSON in {what}: {_json_problem(exc)}") from None

    def after_item(pos: int, close: str, problem: str) -> tuple[int, bool]:
        """Step over the separator after an item: (new position, whether the container closed)."""
        pos = skip(pos)
        if text.startswith(",", pos):
            return skip(pos + 1), False
        if text.startswith(close, pos):
            return pos + 1, True
        raise fail(pos, problem)

    pos = skip(0)
    if not text.startswith("{", pos):
        raise fail(pos, "expected an asciicast header (a JSON object)")
    obj: dict[str, Any] = {}
    key_lines: dict[str, int] = {}
    frames: list[tuple[int, Any]] | None = None
    pos = skip(pos + 1)
    if text.startswith("}", pos):
        pos += 1
    else:
        while True:
            if not text.startswith('"', pos):
                raise fail(pos, "expected a quoted key in the asciicast v1 object")
            key, pos = value_at(pos, "a header key")
            pos = skip(pos)
            if not text.startswith(":", pos):
                raise fail(pos, f"expected ':' after the key {key[:40]!r}")
            pos = skip(pos + 1)
            key_lines[key] = lines.at(pos)
            if key == "stdout" and text.startswith("[", pos):
                frames = []
                obj.pop("stdout", None)
                pos = skip(pos + 1)
                if text.startswith("]", pos):
                    pos += 1
                else:
                    while True:
                        frame_line = lines.at(pos)
                        frame, pos = value_at(pos, "a stdout frame")
                        frames.append((frame_line, frame))
                        pos, closed = after_item(pos, "]", "expected ',' or ']' between stdout frames")
                        if closed:
                            break
            else:
                if key == "stdout":
                    frames = None
                obj[key], pos = value_at(pos, f"the value of {key[:40]!r}")
            pos, closed = after_item(pos, "}", "expected ',' or '}' in the asciicast v1 object")
            if closed:
                break
    pos = skip(pos)
    return obj, key_lines, frames, (lines.at(pos) if pos != end else None)


# ---------------------------------------------------------------------------------------------
# Reader


class CastReader:
    """Streaming reader of an asciicast file of any version.

    The header is parsed on open; events are parsed lazily while iterating, so a v2/v3 file is
    never held in memory whole (v1 is one JSON document and is, up to :data:`MAX_V1_BYTES`).
    Each ``iter()`` restarts from the first event; do not interleave two iterations.

    Args:
        path: the recording.
        strict: when False, events with an unknown code are skipped instead of rejected, and env
            values that are not strings are dropped.

    Raises:
        CastError: for any problem with the file (on open for the header, while iterating for
            events), naming the file and line.

    Example::

        with CastReader("demo.cast") as cast:
            print(cast.header.width, cast.header.height)
            for event in cast:
                ...
    """

    def __init__(self, path: str | os.PathLike[str], *, strict: bool = True) -> None:
        self.path = os.fspath(path)
        self.strict = strict
        self._frames: list[tuple[int, Any]] | None = None  # v1 only
        self._events_offset = 0
        self._header_line = 1
        try:
            self._file: IO[bytes] = open(self.path, "rb")  # noqa: SIM115  # closed by close()
        except OSError as exc:
            raise CastError(self.path, None, f"cannot open: {exc.strerror or exc}") from exc
        try:
            self.header: CastHeader = self._read_header()
        except OSError as exc:
            self._file.close()
            raise CastError(self.path, None, f"cannot read: {exc.strerror or exc}") from exc
        except BaseException:
            self._file.close()
            raise

    # -- header -----------------------------------------------------------------------------

    def _decode(self, raw: bytes, line: int) -> str:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CastError(
                self.path, line, f"invalid UTF-8 at byte {exc.start + 1} of the line (expected UTF-8 text)"
            ) from None

    def _read_header(self) -> CastHeader:
        line = 0
        while True:  # the header is the first non-blank line
            raw = self._file.readline(_MAX_LINE_BYTES + 1)
            if not raw:
                blank = " (only blank lines)" if line else ""
                raise CastError(self.path, 1, f"empty file{blank}, expected an asciicast header")
            line += 1
            if line == 1 and raw.startswith(_BOM):
                raw = raw[len(_BOM) :]
            if len(raw) > _MAX_LINE_BYTES:
                # Only a one-line v1 document can be this long; anything else is refused there.
                if raw.lstrip(b" \t\r\n").startswith(b"{"):
                    return self._read_v1(line)
                raise CastError(self.path, line, f"header line is longer than {_MAX_LINE_BYTES} bytes")
            text = self._decode(raw, line)
            stripped = text.strip(_JSON_WS)
            if stripped:
                break
        self._header_line = line
        if stripped.startswith("#"):
            raise CastError(self.path, line, "expected an asciicast header (a JSON object), found a comment")
        if stripped != "{":
            try:
                obj = json.loads(text)
            except (ValueError, RecursionError) as exc:
                if stripped.startswith("{"):  # the start of a pretty-printed v1 object?
                    return self._read_v1(line)
                raise CastError(
                    self.path,
                    line,
                    f"expected an asciicast header (a JSON object), got invalid JSON ({_json_problem(exc)})",
                ) from None
            if type(obj) is dict and obj.get("version") == 1 and type(obj.get("version")) is int:
                return self._read_v1(line)  # a v1 document written on one line
            header = _parse_header(obj, self.path, line, strict=self.strict)
            self._events_offset = self._file.tell()
            return header
        return self._read_v1(line)

    def _read_v1(self, first_line: int) -> CastHeader:
        """Parse the whole file as one v1 JSON document."""
        too_big = CastError(
            self.path,
            first_line,
            f"the header is not a one-line JSON object and the file is over {MAX_V1_BYTES >> 20} MiB, "
            "too large to read as an asciicast v1 document",
        )
        if os.fstat(self._file.fileno()).st_size > MAX_V1_BYTES:
            raise too_big
        self._file.seek(0)
        data = self._file.read(MAX_V1_BYTES + 1)  # bounded again: the file may grow meanwhile
        if len(data) > MAX_V1_BYTES:
            raise too_big
        if data.startswith(_BOM):
            data = data[len(_BOM) :]
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            line_start = data.rfind(b"\n", 0, exc.start) + 1
            raise CastError(
                self.path,
                line,
                f"invalid UTF-8 at byte {exc.start - line_start + 1} of the line (expected UTF-8 text)",
            ) from None
        del data
        obj, key_lines, frames, trailing = _walk_v1(text, self.path)
        header = _parse_header(obj, self.path, first_line, strict=self.strict, key_lines=key_lines)
        if (
            header.version != 1
        ):  # checked before trailing data: a pretty-printed v2/v3 header has events after it
            raise CastError(
                self.path,
                first_line,
                f"the header spans several lines, which only asciicast v1 allows (this is version {header.version}; "
                "expected a one-line JSON header)",
            )
        if trailing is not None:
            raise CastError(self.path, trailing, "unexpected data after the asciicast v1 object")
        if frames is None:
            if "stdout" in obj:
                where = key_lines.get("stdout", first_line)
                raise CastError(
                    self.path, where, f"'stdout' must be an array of frames, got {_describe(obj['stdout'])}"
                )
            raise CastError(self.path, first_line, "asciicast v1 object has no 'stdout' array of frames")
        self._frames = frames
        return header

    # -- events ----------------------------------------------------------------------------

    def __iter__(self) -> Iterator[CastEvent]:
        """Yield the events in file order, with absolute times; raises CastError lazily."""
        if self._frames is not None:
            return self._iter_v1(self._frames)
        return self._iter_lines()

    def _iter_v1(self, frames: list[tuple[int, Any]]) -> Iterator[CastEvent]:
        time = 0.0
        for line, frame in frames:
            if type(frame) is not list or len(frame) != 2:
                raise CastError(
                    self.path, line, f"expected a stdout frame [delay, data], got {_describe(frame)}"
                )
            delay, data = frame
            problem = _event_problem(delay, "o", data, strict=True)
            if problem is not None:
                raise CastError(self.path, line, problem.replace("event time", "frame delay"))
            time += _number(delay)  # type: ignore[operator]  # a finite number, checked above
            if not math.isfinite(time):
                raise CastError(self.path, line, "accumulated event time overflows")
            yield CastEvent(time, "o", data)

    def _iter_lines(self) -> Iterator[CastEvent]:
        version = self.header.version
        file = self._file
        line = self._header_line
        previous = 0.0  # v2: time of the previous event; v3: the accumulated clock
        try:
            file.seek(self._events_offset)
            while True:
                raw = file.readline(_MAX_LINE_BYTES + 1)
                if not raw:
                    return
                line += 1
                if len(raw) > _MAX_LINE_BYTES:
                    raise CastError(self.path, line, f"line is longer than {_MAX_LINE_BYTES} bytes")
                text = self._decode(raw, line)
                stripped = text.strip(_JSON_WS)
                if not stripped or (version == 3 and stripped.startswith("#")):
                    continue
                try:
                    obj = json.loads(stripped)
                except (ValueError, RecursionError) as exc:
                    if not raw.endswith(b"\n"):  # readline stopped at the end of the file
                        raise CastError(
                            self.path,
                            line,
                            "truncated event: the file ends mid-line (expected a complete [time, code, data] array)",
                        ) from None
                    raise CastError(
                        self.path,
                        line,
                        f"invalid JSON ({_json_problem(exc)}), expected an event [time, code, data]",
                    ) from None
                if type(obj) is not list or len(obj) != 3:
                    raise CastError(
                        self.path, line, f"expected an event [time, code, data], got {_describe(obj)}"
                    )
                stamp, code, data = obj
                problem = _event_problem(stamp, code, data, strict=self.strict)
                if problem is not None:
                    if version == 3:
                        problem = problem.replace("event time", "event interval")
                    raise CastError(self.path, line, problem)
                if code not in EVENT_CODES:
                    continue  # only reached when not strict
                stamp_s: float = _number(stamp)  # type: ignore[assignment]  # a finite number, checked above
                if version == 3:
                    time = previous + stamp_s
                    if not math.isfinite(time):
                        raise CastError(self.path, line, "accumulated event time overflows")
                else:
                    time = stamp_s
                    if time < previous:
                        raise CastError(
                            self.path, line, f"event time {time} is before the previous event ({previous})"
                        )
                previous = time
                yield CastEvent(time, code, data)
        except OSError as exc:
            raise CastError(self.path, line, f"cannot read: {exc.strerror or exc}") from exc

    # -- lifetime --------------------------------------------------------------------------

    def close(self) -> None:
        """Close the file (idempotent)."""
        self._file.close()

    def __enter__(self) -> CastReader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def read_header(path: str | os.PathLike[str]) -> CastHeader:
    """Read only the header of a recording (cheap for v2/v3: one line)."""
    with CastReader(path) as reader:
        return reader.header


def read_cast(path: str | os.PathLike[str], *, strict: bool = True) -> tuple[CastHeader, list[CastEvent]]:
    """Read a whole recording: ``(header, events)`` with absolute event times."""
    with CastReader(path, strict=strict) as reader:
        return reader.header, list(reader)


# ---------------------------------------------------------------------------------------------
# Writer


def _format_time(microseconds: int) -> str:
    """Seconds with at most 6 decimals and no trailing zeros, like asciinema (``1.5``, ``0.000123``)."""
    seconds, micros = divmod(microseconds, 1_000_000)
    return f"{seconds}.{micros:06d}".rstrip("0").removesuffix(".") + ("" if micros else ".0")


def _json_line(obj: Any) -> str:
    """One JSON value on one line, UTF-8 where possible.

    A lone surrogate (legal in a JSON escape, so readable from a file) cannot be encoded as UTF-8;
    that line falls back to ASCII escapes instead of failing.
    """
    text = json.dumps(obj, ensure_ascii=False, allow_nan=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(obj, allow_nan=False)
    # Python's str.splitlines() (and some editors) break lines at these; escaped, a cast stays
    # one event per line for every line-splitter, not only for "\n".
    return text.translate(_LINE_BREAK_ESCAPES)


def _header_dict(header: CastHeader, version: int) -> dict[str, Any]:
    """The header object as written for ``version`` (2 or 3).

    Standard fields win over an ``extra`` key of the same name (such a key cannot be written).
    v2 has no field for ``term_type``; v2 recorders keep it in ``env["TERM"]``.
    """
    out: dict[str, Any] = {"version": version}
    if version == 3:
        term: dict[str, Any] = {"cols": header.width, "rows": header.height}
        if header.term_type is not None:
            term["type"] = header.term_type
        term_extra = header.extra.get("term")
        if isinstance(term_extra, dict):
            term.update({k: v for k, v in term_extra.items() if k not in _TERM_KEYS})
        if header.theme is not None:
            term["theme"] = header.theme
        out["term"] = term
    else:
        out["width"], out["height"] = header.width, header.height
    optional = {
        "timestamp": header.timestamp,
        "duration": header.duration,
        "idle_time_limit": header.idle_time_limit,
        "command": header.command,
        "title": header.title,
        "env": header.env or None,
        "theme": header.theme if version == 2 else None,
        "tags": header.tags or None,
    }
    out.update({k: v for k, v in optional.items() if v is not None})
    out.update({k: v for k, v in header.extra.items() if k not in _KNOWN_KEYS[version]})
    return out


def _discard(file: IO[bytes], temp_path: str) -> None:
    """Close and delete an unfinished temp file (also run by the finalizer if never closed)."""
    try:
        file.close()
    finally:
        with contextlib.suppress(FileNotFoundError):  # already gone: nothing left behind
            os.unlink(temp_path)


class CastWriter:
    """Streaming, atomic asciicast writer (v2 or v3).

    Lines go to a temp file in the destination's folder, which is renamed over the destination
    only by a successful :meth:`close`; on an exception inside ``with`` (or if the writer is
    dropped unclosed) the temp file is deleted, so the destination never exists half-written.
    Times are written with at most 6 decimals; v3 intervals are computed from the rounded
    absolute times so that re-reading accumulates no rounding drift.

    Args:
        path: the destination (replaced if it exists).
        header: metadata; ``header.version`` is ignored in favour of ``version``.
        version: 2 (absolute times) or 3 (intervals).

    Raises:
        ValueError: ``version`` is not 2 or 3.
        CastError: the header or an event could not be read back (bad size, bad time, time going
            backwards, unknown code, ...); the message names the line it would have been on.

    Example::

        with CastWriter("out.cast", CastHeader(2, 80, 24)) as writer:
            writer.write(CastEvent(0.5, "o", "hello\\r\\n"))
    """

    def __init__(self, path: str | os.PathLike[str], header: CastHeader, *, version: int = 2) -> None:
        if version not in (2, 3):
            raise ValueError(f"can write asciicast version 2 or 3, not {version!r}")
        self.path = os.fspath(path)
        self.version = version
        self._line = 1
        self._last_us = 0
        self._closed = False
        try:
            header_line = _json_line(_header_dict(header, version))
        except (TypeError, ValueError, RecursionError) as exc:  # not JSON-serialisable, NaN, or cyclic
            raise CastError(self.path, 1, f"header cannot be written as JSON: {exc}") from None
        # Round-trip through the reader's checks so that we never write what we cannot read.
        _parse_header(json.loads(header_line), self.path, 1, strict=True)
        self._temp_path, self._file = self._create_temp()
        self._finalizer = weakref.finalize(self, _discard, self._file, self._temp_path)
        try:
            self._file.write(header_line.encode("utf-8") + b"\n")
        except BaseException:
            self.abort()
            raise

    def _create_temp(self) -> tuple[str, IO[bytes]]:
        """Create a fresh temp file next to the destination (same filesystem, so rename is atomic)."""
        folder, name = os.path.split(os.path.abspath(self.path))
        for _ in range(100):
            temp_path = os.path.join(folder, f".{name}.{secrets.token_hex(4)}.tmp")
            try:
                # os.open with 0o666 lets the umask set the final file's mode (mkstemp forces 0o600).
                fd = os.open(
                    temp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666
                )
            except FileExistsError:
                continue
            return temp_path, os.fdopen(fd, "wb")
        raise FileExistsError(f"could not create a temp file next to {self.path}")

    def write(self, event: CastEvent) -> None:
        """Append one event; its time must not be before the previous event's."""
        if self._closed:
            raise ValueError(f"write to a closed CastWriter ({self.path})")
        line = self._line + 1
        problem = _event_problem(event.time, event.code, event.data, strict=True)
        if problem is not None:
            raise CastError(self.path, line, problem)
        micros = round(_number(event.time) * 1_000_000)  # type: ignore[operator]  # checked above
        if micros < self._last_us:
            raise CastError(
                self.path,
                line,
                f"event time {event.time} is before the previous event ({self._last_us / 1e6})",
            )
        stamp = micros - self._last_us if self.version == 3 else micros
        text = f"[{_format_time(stamp)}, {_json_line(event.code)}, {_json_line(event.data)}]\n"
        self._file.write(text.encode("utf-8"))
        self._last_us = micros
        self._line = line

    def close(self) -> None:
        """Finish the file and move it into place (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._file.flush()
            os.fsync(self._file.fileno())  # the rename must not land before the data does
            self._file.close()
            os.replace(self._temp_path, self.path)
        except BaseException:
            self._finalizer()
            raise
        self._finalizer.detach()

    def abort(self) -> None:
        """Drop everything written so far; the destination is left untouched (idempotent)."""
        self._closed = True
        self._finalizer()

    def __enter__(self) -> CastWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_cast(
    path: str | os.PathLike[str], header: CastHeader, events: Iterable[CastEvent], *, version: int = 2
) -> None:
    """Write a whole recording atomically (see :class:`CastWriter`)."""
    with CastWriter(path, header, version=version) as writer:
        for event in events:
            writer.write(event)
