"""`ncomp data render`: recordings -> a captioned clip dataset, sharded and parallel.

Variants (the paper's two corpora):

* ``general``: every clip of every readable recording (public casts, anything a user has).
* ``clean``: generated sessions, filtered: clips where nothing changes, where the emulator met
  sequences it could not interpret, or whose content exceeds the grid (auto-wrapped lines, or a
  terminal larger than ``clean_max_grid``) are dropped, and the reason is counted.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import traceback
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm import tqdm

from neuralcomputer.data.dataset import (
    clip_record,
    manifest_name,
    session_id,
    split_for,
    write_clip_payload,
    write_manifest,
    write_report,
)
from neuralcomputer.data.jobs import interruptible, pool_options
from neuralcomputer.data.terminal.asciicast import read_header
from neuralcomputer.data.terminal.captions import Captioner, TemplateCaptioner, context_for
from neuralcomputer.data.terminal.clips import Clip, ClipOptions, iter_clips
from neuralcomputer.errors import NCError

CAST_SUFFIXES = (".cast", ".json", ".asciicast")
VARIANTS = ("general", "clean")


@dataclass(frozen=True)
class BuildOptions:
    """What to render and how to filter."""

    variant: str = "general"
    clip: ClipOptions = field(default_factory=ClipOptions)
    clean_max_grid: tuple[int, int] = (120, 40)


@dataclass
class CastResult:
    """The outcome for one recording."""

    source: str
    records: list[dict] = field(default_factory=list)
    error: str | None = None
    dropped: dict[str, int] = field(default_factory=dict)
    unhandled: int = 0


def real_casts_dir() -> Path:
    """Where the public recordings live: ``$NC_REAL_CASTS``, else ``../shared/data/real-casts`` beside
    this checkout (read in place, never copied into the project; it may not exist)."""
    default = Path(__file__).resolve().parents[4] / "shared" / "data" / "real-casts"  # ../shared
    return Path(os.environ.get("NC_REAL_CASTS", default))


def find_casts(inputs: list[str | Path]) -> list[Path]:
    """Files to render: each input is a cast file or a folder searched recursively (sorted)."""
    found: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            inside = sorted(p for p in path.rglob("*") if p.suffix in CAST_SUFFIXES and p.is_file()
                            and p.name != "MANIFEST.tsv")
            if not inside:  # a wrong folder must not pass as an empty dataset
                raise NCError(f"{path}: no recordings in this folder (expected {', '.join(sorted(CAST_SUFFIXES))} "
                              "files, e.g. from ncomp data record)")
            found += inside
        elif path.is_file():
            found.append(path)
        else:
            raise NCError(f"{path}: no such file or directory")
    return sorted(set(found), key=str)


def select_shard(items: list, shard: tuple[int, int]) -> list:
    """Items ``i`` with ``i % N == K``: N jobs with K = 0..N-1 cover everything exactly once."""
    k, n = shard
    if not (n >= 1 and 0 <= k < n):
        raise NCError(f"bad shard {k}/{n} (expected K/N with 0 <= K < N)")
    return [x for i, x in enumerate(items) if i % n == k]


def clean_drop_reason(clip: Clip, max_grid: tuple[int, int]) -> str | None:
    """Why the clean variant drops this clip, or None to keep it."""
    if not clip.changes:
        return "static"
    if clip.unhandled:
        return "emulator-errors"
    if clip.wrapped or clip.grid[0] > max_grid[0] or clip.grid[1] > max_grid[1]:
        return "exceeds-grid"
    return None


def render_cast(path: Path, out: Path, options: BuildOptions, captioner: Captioner | None = None) -> CastResult:
    """Render one recording into clips under ``out/clips`` and return their manifest records."""
    captioner = captioner or TemplateCaptioner()
    result = CastResult(source=str(path))
    dropped: Counter[str] = Counter()
    written: list[Path] = []
    try:
        header = read_header(path)
        meta = header.extra.get("x_neuralcomputer") if isinstance(header.extra, dict) else None
        meta = meta if isinstance(meta, dict) else {}
        generator = str(meta.get("generator", ""))
        task = str(meta.get("task", ""))
        session = session_id(path)
        split = split_for(session)
        for clip in iter_clips(path, options.clip):
            result.unhandled += clip.unhandled
            if options.variant == "clean":
                reason = clean_drop_reason(clip, options.clean_max_grid)
                if reason:
                    dropped[reason] += 1
                    continue
            clip_id = f"{session}-c{clip.index:04d}"
            rel = Path("clips") / f"{clip_id}.npz"
            write_clip_payload(out / rel, clip.frames, clip.frame_index, clip.texts, clip.cursor)
            written.append(out / rel)
            height, width = clip.frames.shape[1:3]
            result.records.append(clip_record(
                id=clip_id, session=session, source=str(path), split=split, variant=options.variant,
                fps=options.clip.fps, width=int(width), height=int(height), frames=clip.num_frames,
                grid={"cols": clip.grid[0], "rows": clip.grid[1]},
                font_size=options.clip.font_size, theme=options.clip.theme,
                start=round(clip.start, 3), generator=generator,
                captions=captioner.caption(context_for(clip, task=task, generator=generator,
                                                          fps=options.clip.fps)),
                commands=[c.text for c in clip.commands],
                stats={"unique_frames": len(clip.frames), "unhandled": clip.unhandled,
                       "wrapped": clip.wrapped, "alt_screen_frames": clip.alt_screen_frames},
                path=str(rel),
            ))
    except NCError as exc:
        result.error = str(exc)
    except Exception as exc:  # a bug or a hostile file must not take the batch down
        result.error = f"{path}: unexpected {type(exc).__name__}: {exc}"
        result.dropped["traceback"] = 1
        traceback.print_exc()
    if result.error:
        # A recording that failed half-way contributes nothing: remove what it wrote.
        for p in written:
            p.unlink(missing_ok=True)
        result.records = []
    result.dropped.update(dropped)
    return result


def _worker(args: tuple[Path, Path, BuildOptions, Captioner | None]) -> CastResult:
    return render_cast(*args)


@dataclass
class RenderSummary:
    """What a render job did."""

    casts: int = 0
    rendered: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    clips: int = 0
    frames: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    faithful: int = 0
    manifest: str = ""
    report: str = ""


def render_dataset(inputs: list[str | Path], out: str | Path, options: BuildOptions = BuildOptions(), *,
                   shard: tuple[int, int] = (0, 1), workers: int = 1, progress: bool = True,
                   captioner: Captioner | None = None) -> RenderSummary:
    """Render every recording under ``inputs`` (this shard's share) into the dataset at ``out``.

    Bad recordings are skipped and reported; the batch goes on. The manifest is written last and
    atomically. ``faithful`` counts recordings whose every event the emulator understood.
    ``captioner`` replaces the built-in :class:`TemplateCaptioner` (e.g. an LLM client; it must be
    picklable when ``workers > 1``).
    """
    if options.variant not in VARIANTS:
        raise NCError(f"unknown variant {options.variant!r} (expected one of {', '.join(VARIANTS)})")
    out = Path(out)
    casts = select_shard(find_casts(inputs), shard)
    out.mkdir(parents=True, exist_ok=True)
    summary = RenderSummary(casts=len(casts))
    records: list[dict] = []
    dropped: Counter[str] = Counter()
    per_cast: list[dict] = []
    # Largest recordings first so that no worker is left with a long one at the end.
    jobs = [(p, out, options, captioner) for p in sorted(casts, key=lambda p: -p.stat().st_size)]
    bar = tqdm(total=len(jobs), desc="render", unit="cast", disable=not progress)
    # SIGTERM unwinds like Ctrl-C (the pool's exit terminates its workers); a worker whose job was
    # killed outright leaves by itself (jobs.worker_init).
    with interruptible():
        if workers > 1 and len(jobs) > 1:
            with mp.get_context("spawn").Pool(workers, **pool_options()) as pool:
                results = list(_track(pool.imap_unordered(_worker, jobs), bar))
        else:
            results = list(_track(map(_worker, jobs), bar))
    bar.close()
    results.sort(key=lambda r: r.source)  # a deterministic manifest whatever the finishing order
    for r in results:
        if r.error:
            summary.failed[r.source] = r.error
        else:
            summary.rendered += 1
            summary.faithful += int(r.unhandled == 0)
        records += r.records
        dropped.update(r.dropped)
        per_cast.append({"source": r.source, "clips": len(r.records), "error": r.error,
                         "unhandled_sequences": r.unhandled, "dropped": r.dropped})
    summary.clips = len(records)
    summary.frames = sum(r["frames"] for r in records)
    summary.dropped = dict(dropped)
    manifest = out / manifest_name(shard)
    write_manifest(manifest, records)
    summary.manifest = str(manifest)
    summary.report = str(write_report(out, "render", {"summary": asdict(summary), "options": asdict(options),
                                                      "shard": list(shard), "casts": per_cast}))
    return summary


def _track(results, bar):
    for r in results:
        bar.update(1)
        yield r
