"""Which VT emulator renders the real recordings correctly? pyte as shipped vs our extended pyte.

For every cast in ../shared/data/real-casts (or the folder given), replays the output events in
both emulators and prints one JSON line per cast and a summary line:

* ``crashed``: the emulator raised on the recording (pyte raises TypeError on e.g. ``CSI ? 5 n``);
* ``unhandled``: sequences ours still does not interpret (after the fixes);
* ``alt_screen``: the recording switches to the alternate screen (vim, less, htop, tmux ...);
* ``differs_at_end``: the final screens differ (a TUI left on screen, DCS payload drawn as text,
  misparsed ``CSI > 4;2 m`` underlining everything ...).

Usage: ``ncomp bench emulators [FOLDER]``
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from neuralcomputer.data.terminal.asciicast import CastReader
from neuralcomputer.data.terminal.build import real_casts_dir
from neuralcomputer.data.terminal.emulator import Terminal, make_vanilla_terminal
from neuralcomputer.errors import NCError


def compare(path: Path) -> dict:
    with CastReader(path) as reader:
        header = reader.header
        ours = Terminal(header.width, header.height)
        vanilla_screen, vanilla_feed = make_vanilla_terminal(header.width, header.height)
        vanilla_crash = None
        for event in reader:
            if event.code == "o":
                ours.feed(event.data)
                if vanilla_crash is None:
                    try:
                        vanilla_feed(event.data)
                    except Exception as exc:  # measuring exactly this
                        vanilla_crash = f"{type(exc).__name__}: {exc}"[:120]
            elif event.code == "r":
                cols, rows = (int(v) for v in event.data.split("x"))
                ours.resize(cols, rows)
                vanilla_screen.resize(rows, cols)
    vanilla_text = "\n".join(line.rstrip() for line in vanilla_screen.display)
    return {"cast": path.name, "vanilla_crashed": vanilla_crash, "ours_unhandled": ours.unhandled_count,
            "ours_ignored_benign": ours.ignored, "alt_screen": ours.screen.alt_switches > 0,
            "differs_at_end": vanilla_crash is None and vanilla_text != ours.text()}


def bench_emulators(folder: Path | None = None) -> Iterator[dict]:
    """One row per cast in ``folder`` (default: the real casts in ../shared), then a summary row."""
    folder = folder or real_casts_dir()
    if not folder.is_dir():
        raise NCError(f"{folder}: no such folder of asciicast recordings")
    rows = []
    for path in sorted(p for p in folder.iterdir() if p.suffix in (".cast", ".json", ".asciicast")):
        row = compare(path)
        rows.append(row)
        yield row
    yield {
        "summary": True, "casts": len(rows),
        "vanilla_pyte_crashed": sum(r["vanilla_crashed"] is not None for r in rows),
        "vanilla_pyte_final_screen_differs": sum(r["differs_at_end"] for r in rows),
        "use_alternate_screen": sum(r["alt_screen"] for r in rows),
        "ours_fully_interpreted": sum(r["ours_unhandled"] == 0 for r in rows),
    }
