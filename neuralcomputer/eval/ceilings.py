"""Accuracy ceilings of the OCR readers: how well each reads ground-truth renders.

A generated clip can score no better under an OCR metric than its reader scores on the real frames,
so every OCR figure should be read against this ceiling. For each clip (from a dataset, or rendered
on the fly from recordings), K=5 frames are read by each reader and scored against the stored
screen text with the paper's char/line accuracy; readers are also scored against each other.

Usage::

    python -m neuralcomputer.eval.ceilings DATASET_OR_CASTS... [--readers grid,tesseract-psm3] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rapidfuzz.distance import Levenshtein
from tqdm import tqdm

from neuralcomputer.errors import NCError
from neuralcomputer.eval.ocr import (
    K_FRAMES,
    FrameReader,
    TesseractOCR,
    char_accuracy,
    line_accuracy,
    normalise_ocr_text,
    sample_frame_indices,
)

DEFAULT_READERS = ("grid", "tesseract-psm3", "tesseract-psm6")
_TESSERACT_NAME = re.compile(r"^tesseract-psm(\d+)(?:-x(\d+))?$")
_CAST_SUFFIXES = (".cast", ".json", ".asciicast")


@dataclass
class _Sample:
    """The K sampled frames of one clip: ``frames`` (K, H, W, 3) uint8 and their ground-truth text."""

    session: str
    clip: str
    frames: np.ndarray
    texts: list[str]
    font_size: int
    theme: str


def make_reader(name: str, font_size: int = 13, theme: str | None = None) -> FrameReader:
    """A reader by name: ``grid`` or ``tesseract-psm<N>[-x<scale>]``."""
    if name == "grid":
        from neuralcomputer.eval.grid_ocr import GridOCR

        return GridOCR(font_size=font_size, theme=theme)
    match = _TESSERACT_NAME.match(name)
    if match is None:
        raise NCError(f"unknown reader {name!r} (expected grid or tesseract-psm<N>[-x<scale>])")
    if not TesseractOCR.available():
        raise NCError(f"reader {name!r} needs the tesseract binary, which is not installed")
    return TesseractOCR(psm=int(match[1]), scale=int(match[2] or 1))


def _evenly(items: list, n: int | None) -> list:
    if n is None or len(items) <= n:
        return items
    return [items[i] for i in sample_frame_indices(len(items), n)]


def iter_samples(sources: Sequence[str | Path], *, k: int = K_FRAMES, clips_per_session: int | None = None,
                 font_size: int = 13, theme: str = "dark") -> Iterator[_Sample]:
    """K frames per clip from datasets (folders with a manifest) or recordings rendered on the fly.

    ``clips_per_session`` keeps that many clips of each recording, evenly spaced (all when ``None``).
    ``font_size``/``theme`` apply to recordings only; dataset clips keep the ones they were rendered with.
    """
    from neuralcomputer.data.dataset import load_manifest, read_clip_payload

    for source in map(Path, sources):
        if source.is_dir() and any(source.glob("manifest*.jsonl")):
            by_session: dict[str, list[dict]] = defaultdict(list)
            for record in load_manifest(source):
                by_session[record["session"]].append(record)
            for session, records in sorted(by_session.items()):
                for record in _evenly(records, clips_per_session):
                    payload = read_clip_payload(source / record["path"])
                    idx = sample_frame_indices(len(payload["frame_index"]), k)
                    yield _Sample(session, record["id"], payload["frames"][idx], [str(payload["text"][i]) for i in idx],
                                  int(record.get("font_size", 13)), str(record.get("theme", "dark")))
        else:
            casts = sorted(p for p in source.iterdir() if p.suffix in _CAST_SUFFIXES) if source.is_dir() else [source]
            if not casts:
                raise NCError(f"{source}: neither a dataset (no manifest*.jsonl) nor a folder of recordings")
            yield from _cast_samples(casts, k, clips_per_session, font_size, theme)


def _cast_samples(casts: list[Path], k: int, clips_per_session: int | None, font_size: int,
                  theme: str) -> Iterator[_Sample]:
    from neuralcomputer.data.terminal.clips import ClipOptions, iter_clips

    options = ClipOptions(font_size=font_size, theme=theme)
    for path in casts:
        clips = list(iter_clips(path, options))
        for clip in _evenly(clips, clips_per_session):
            idx = sample_frame_indices(clip.num_frames, k)
            yield _Sample(path.stem, f"{path.stem}-c{clip.index:04d}", np.stack([clip.frame(i) for i in idx]),
                          [clip.text(i) for i in idx], font_size, theme)


# -- scoring (one clip per task, so clips can be spread over processes) ---------------------------

_READERS: dict[tuple[str, int, str], FrameReader] = {}


def _reader(name: str, font_size: int, theme: str) -> FrameReader:
    key = (name, font_size, theme)
    if key not in _READERS:
        _READERS[key] = make_reader(name, font_size, theme)
    return _READERS[key]


def _substitutions(ref: str, pred: str) -> list[tuple[str, str]]:
    """(reference char, read char) of every substitution, insertion ('' -> c) and deletion (c -> '')."""
    out = []
    for op in Levenshtein.editops(ref, pred):
        if op.tag == "replace":
            out.append((ref[op.src_pos], pred[op.dest_pos]))
        elif op.tag == "delete":
            out.append((ref[op.src_pos], ""))
        else:
            out.append(("", pred[op.dest_pos]))
    return out


def _score_sample(sample: _Sample, readers: Sequence[str]) -> dict:
    """Every reader's reading of the sample's frames, scored against the ground truth."""
    result: dict = {"session": sample.session, "clip": sample.clip, "readers": {}}
    lines_by_reader: dict[str, list[list[str]]] = {}
    for name in readers:
        reader = _reader(name, sample.font_size, sample.theme)
        chars, exact, errors, seconds = [], [], Counter(), 0.0
        lines_by_reader[name] = []
        for frame, truth in zip(sample.frames, sample.texts, strict=True):
            t0 = time.perf_counter()
            text = reader.read(frame)
            seconds += time.perf_counter() - t0
            ref, pred = normalise_ocr_text(truth), normalise_ocr_text(text)
            lines_by_reader[name].append(pred)
            chars.append(char_accuracy(ref, pred))
            exact.append(line_accuracy(ref, pred))
            errors.update(_substitutions("\n".join(ref), "\n".join(pred)))
        result["readers"][name] = {"char_acc": chars, "line_acc": exact, "seconds": seconds,
                                   "errors": errors}
    agreement = {}
    for a in readers:
        for b in readers:
            if a < b:
                pairs = list(zip(lines_by_reader[a], lines_by_reader[b], strict=True))
                agreement[f"{a}~{b}"] = {"char_acc": [char_accuracy(x, y) for x, y in pairs],
                                         "line_acc": [line_accuracy(x, y) for x, y in pairs]}
    result["agreement"] = agreement
    return result


def _score_task(args: tuple[_Sample, tuple[str, ...]]) -> dict:
    return _score_sample(*args)


def measure_ceilings(sources: str | Path | Sequence[str | Path], *, readers: Sequence[str] = DEFAULT_READERS,
                     k: int = K_FRAMES, clips_per_session: int | None = None, workers: int = 1,
                     font_size: int = 13, theme: str = "dark", top_errors: int = 15, progress: bool = False) -> dict:
    """Mean paper char/line accuracy of each reader on ground-truth renders, and their agreement.

    Args:
        sources: dataset folders and/or recordings (files or folders of them, rendered on the fly).
        readers: reader names (``grid``, ``tesseract-psm3``, ``tesseract-psm6-x2``, ...).
        k: frames read per clip (the paper: 5).
        clips_per_session: clips kept per recording, evenly spaced (all when ``None``).
        workers: processes reading clips in parallel.
        font_size, theme: rendering of recordings (datasets keep their own).
        top_errors: how many of each reader's most frequent character errors to report.
        progress: show a progress bar (clips) on stderr.

    Returns:
        ``{"readers": {name: {"char_acc", "line_acc", "frames", "seconds_per_frame",
        "perfect_frames", "top_errors"}}, "agreement": {"a~b": {"char_acc", "line_acc"}},
        "sessions": {session: {reader: char_acc}}, "clips", "frames", "k"}``. Agreement scores the
        first reader's reading as the reference.
    """
    if isinstance(sources, (str, Path)):
        sources = [sources]
    readers = tuple(readers)
    for name in readers:  # fail before any work on a bad name or a missing binary
        make_reader(name, font_size, theme)
    samples = iter_samples(sources, k=k, clips_per_session=clips_per_session, font_size=font_size, theme=theme)
    tasks = ((s, readers) for s in samples)
    results: list[dict] = []
    with tqdm(desc="ceilings", unit="clip", disable=not progress, file=sys.stderr) as bar:
        if workers > 1:
            with ProcessPoolExecutor(workers) as pool:
                for result in pool.map(_score_task, tasks, chunksize=1):
                    results.append(result)
                    bar.update()
        else:
            for task in tasks:
                results.append(_score_task(task))
                bar.update()
    return _summarise(results, readers, k, top_errors)


def _summarise(results: list[dict], readers: tuple[str, ...], k: int, top_errors: int) -> dict:
    summary: dict = {"clips": len(results), "frames": 0, "k": k, "readers": {}, "agreement": {}, "sessions": {}}
    for name in readers:
        chars = [c for r in results for c in r["readers"][name]["char_acc"]]
        exact = [c for r in results for c in r["readers"][name]["line_acc"]]
        errors: Counter = Counter()
        for r in results:
            errors.update(r["readers"][name]["errors"])
        seconds = sum(r["readers"][name]["seconds"] for r in results)
        summary["frames"] = len(chars)
        summary["readers"][name] = {
            "char_acc": round(float(np.mean(chars)), 4) if chars else None,
            "line_acc": round(float(np.mean(exact)), 4) if exact else None,
            "frames": len(chars),
            "perfect_frames": sum(1 for c in chars if c == 1.0),
            "seconds_per_frame": round(seconds / max(len(chars), 1), 4),
            "top_errors": [{"ref": a, "read": b, "count": n} for (a, b), n in errors.most_common(top_errors)],
        }
    pairs = {key for r in results for key in r["agreement"]}
    for key in sorted(pairs):
        chars = [c for r in results for c in r["agreement"][key]["char_acc"]]
        exact = [c for r in results for c in r["agreement"][key]["line_acc"]]
        summary["agreement"][key] = {"char_acc": round(float(np.mean(chars)), 4),
                                     "line_acc": round(float(np.mean(exact)), 4)}
    by_session: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in results:
        for name in readers:
            by_session[r["session"]][name].extend(r["readers"][name]["char_acc"])
    summary["sessions"] = {s: {name: round(float(np.mean(v)), 4) for name, v in d.items()}
                           for s, d in sorted(by_session.items())}
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: print the ceilings of the named readers on the given sources as JSON."""
    parser = argparse.ArgumentParser(prog="python -m neuralcomputer.eval.ceilings", description=__doc__.split("\n\n")[0])
    parser.add_argument("sources", nargs="+", type=Path, help="datasets, recordings, or folders of recordings")
    parser.add_argument("--readers", default=",".join(DEFAULT_READERS),
                        help="comma-separated: grid, tesseract-psm<N>[-x<scale>] (default: %(default)s)")
    parser.add_argument("--k", type=int, default=K_FRAMES, help="frames per clip (default: %(default)s)")
    parser.add_argument("--clips-per-session", type=int, default=None, help="clips kept per recording (default: all)")
    parser.add_argument("--workers", type=int, default=1, help="parallel processes (default: %(default)s)")
    parser.add_argument("--font-size", type=int, default=13, help="for recordings rendered on the fly")
    parser.add_argument("--theme", default="dark", help="for recordings rendered on the fly")
    parser.add_argument("--no-sessions", action="store_true", help="leave out the per-recording breakdown")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        result = measure_ceilings(args.sources, readers=[r for r in args.readers.split(",") if r], k=args.k,
                                  clips_per_session=args.clips_per_session, workers=args.workers,
                                  font_size=args.font_size, theme=args.theme, progress=not args.quiet)
    except NCError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.no_sessions:
        result.pop("sessions")
    print(json.dumps(result, indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
