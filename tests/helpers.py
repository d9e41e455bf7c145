"""Test helpers: the real recordings in ../shared (skipped cleanly when absent), tiny casts."""

from __future__ import annotations

from pathlib import Path

import pytest

from neuralcomputer.data.terminal.asciicast import CastEvent, CastHeader, write_cast
from neuralcomputer.data.terminal.build import real_casts_dir

REAL_CASTS = real_casts_dir()


def real_cast_paths() -> list[Path]:
    if not REAL_CASTS.is_dir():
        return []
    return sorted(p for p in REAL_CASTS.iterdir() if p.suffix in (".cast", ".json", ".asciicast"))


@pytest.fixture
def real_casts() -> Path:
    """The folder of real asciinema recordings; skips the test when it is not there."""
    if not real_cast_paths():
        pytest.skip(f"real casts not found at {REAL_CASTS} (set NC_REAL_CASTS)")
    return REAL_CASTS


def real_cast(name: str) -> Path:
    """One named real recording, or skip."""
    path = REAL_CASTS / name
    if not path.is_file():
        pytest.skip(f"real cast {name} not found in {REAL_CASTS}")
    return path


def make_cast(path: Path, events: list[tuple[float, str, str]], cols: int = 40, rows: int = 6, **extra) -> Path:
    """Write a small v2 cast from (time, code, data) triples."""
    header = CastHeader(version=2, width=cols, height=rows, extra=extra)
    write_cast(path, header, [CastEvent(t, c, d) for t, c, d in events])
    return path
