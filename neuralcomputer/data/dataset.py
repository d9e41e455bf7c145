"""The on-disk dataset format (terminal clips now, desktop episodes later) and its PyTorch reader.

Layout of a dataset directory::

    manifest.jsonl                 one clip per line (or manifest-K-of-N.jsonl, one per shard)
    clips/<clip id>.npz            frames_delta (U,H,W,3) uint8, frame_index (T,), text (U,), cursor (T,3)
    reports/render-*.json          what each render job rendered, skipped and why

Frames are stored losslessly (zlib inside ``.npz``), each distinct frame once and as its difference
mod 256 from the previous distinct frame; ``frame_index`` restores the full sequence. Every payload is written to a temporary name and renamed, and a
manifest is written only after its clips exist, so an interrupted job never leaves a half clip
referenced. Shards of one job write disjoint manifests into the same directory; readers merge
every ``manifest*.jsonl``.

Splits are by session (a hash of the recording's content), never by clip: all clips of one
recording land in the same split, on every machine, whatever the sharding.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import statistics
import tempfile
import time
import zipfile
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from neuralcomputer.errors import NCError

MANIFEST_GLOB = "manifest*.jsonl"
SPLITS = ("train", "val", "test")
DEFAULT_SPLIT_FRACTIONS = (0.90, 0.05, 0.05)


def split_for(session: str, fractions: tuple[float, float, float] = DEFAULT_SPLIT_FRACTIONS) -> str:
    """Deterministic split of a session id (same answer on every machine and shard)."""
    u = int.from_bytes(hashlib.sha256(session.encode()).digest()[:8], "big") / 2**64
    if u < fractions[0]:
        return "train"
    return "val" if u < fractions[0] + fractions[1] else "test"


def session_id(path: Path) -> str:
    """Stable id of a recording: its sanitised file stem plus a short hash of its bytes."""
    digest = hashlib.sha1(path.read_bytes()).hexdigest()[:8]
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", path.stem)[:80]
    return f"{stem}-{digest}"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same directory and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_clip_payload(path: Path, frames: np.ndarray, frame_index: np.ndarray, texts: list[str],
                       cursor: np.ndarray, extra: dict[str, np.ndarray] | None = None) -> None:
    """Store one clip losslessly. Shapes: frames (U,H,W,3) uint8, frame_index (T,), cursor (T,3);
    ``extra``: more per-frame arrays (T, ...) stored as given, e.g. ``pointer`` (T,2) int16 and
    ``frame_time`` (T,) float64 of desktop clips (read back by :func:`read_clip_payload`)."""
    # Each frame is stored as its difference (mod 256) from the previous one: consecutive terminal
    # frames differ in a few rows, so the deltas are mostly zeros and deflate fast and small.
    delta = frames.copy()
    delta[1:] -= frames[:-1]
    arrays = {"frames_delta": delta, "frame_index": frame_index.astype(np.int32),
              "text": np.asarray(texts, dtype=np.str_), "cursor": cursor.astype(np.int16)}
    for name, array in (extra or {}).items():
        if name in arrays or len(array) != len(frame_index):
            raise NCError(f"extra payload array {name!r}: reserved name or not one row per frame "
                          f"({len(array)} rows for {len(frame_index)} frames)")
        arrays[name] = np.asarray(array)
    buf = io.BytesIO()
    # An .npz is a zip of .npy files; deflate level 1 instead of numpy's default 6: terminal frames
    # compress almost as well and 5x faster (the job's bottleneck otherwise).
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name, array in arrays.items():
            with zf.open(f"{name}.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.ascontiguousarray(array), allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())


def read_clip_payload(path: Path) -> dict[str, np.ndarray]:
    """Load a clip payload: ``frames`` (T,H,W,3) uint8 expanded, ``text`` (T,), ``cursor`` (T,3), and any
    other per-frame arrays stored with it (e.g. ``pointer`` (T,2) of desktop clips)."""
    with np.load(path) as z:
        index = z["frame_index"]
        unique = np.cumsum(z["frames_delta"], axis=0, dtype=np.uint8)  # undo the delta coding, mod 256
        extra = {k: z[k] for k in z.files if k not in ("frames_delta", "frame_index", "text")}
        return {**extra, "frames": unique[index], "text": z["text"][index], "unique_frames": unique,
                "frame_index": index}


def write_manifest(path: Path, records: Iterable[dict]) -> None:
    """Write a manifest atomically (one JSON object per line)."""
    text = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in records)
    atomic_write_bytes(path, text.encode())


def is_dataset(root: str | Path) -> bool:
    """Whether ``root`` holds a manifest (``manifest.jsonl``, or the parts a sharded or parallel job writes)."""
    return any(Path(root).glob(MANIFEST_GLOB))


def manifest_name(shard: tuple[int, int]) -> str:
    k, n = shard
    return "manifest.jsonl" if n == 1 else f"manifest-{k:05d}-of-{n:05d}.jsonl"


def load_manifest(root: str | Path) -> list[dict]:
    """All clip records of a dataset (every manifest part), in a stable order."""
    root = Path(root)
    if not root.is_dir():
        raise NCError(f"{root}: not a dataset directory")
    parts = sorted(root.glob(MANIFEST_GLOB))
    if not parts:
        raise NCError(f"{root}: no manifest.jsonl (is this a dataset made by `ncomp data render`?)")
    records: list[dict] = []
    seen: set[str] = set()
    for part in parts:
        for n, line in enumerate(part.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise NCError(f"{part}:{n}: not a JSON object ({exc.msg})") from exc
            if not isinstance(record, dict) or "id" not in record:
                raise NCError(f"{part}:{n}: expected a clip record with an 'id'")
            if record["id"] in seen:
                continue  # the same clip rendered by two overlapping jobs
            seen.add(record["id"])
            records.append(record)
    return records


def _summary(values: list[int]) -> dict[str, float]:
    if not values:
        return {"mean": 0.0, "min": 0, "max": 0}
    return {"mean": round(statistics.fmean(values), 1), "min": min(values), "max": max(values)}


def dataset_info(root: str | Path) -> dict[str, Any]:
    """Statistics of a dataset: clips, frames, hours, splits, grids, caption lengths per tier."""
    records = load_manifest(root)
    frames = sum(int(r["frames"]) for r in records)
    seconds = sum(int(r["frames"]) / float(r["fps"]) for r in records)
    captions = {}
    for tier in ("semantic", "regular", "detailed"):
        chars = [len(r.get("captions", {}).get(tier, "")) for r in records]
        words = [len(r.get("captions", {}).get(tier, "").split()) for r in records]
        captions[tier] = {"chars": _summary(chars), "words": _summary(words)}
    return {
        "root": str(root),
        "clips": len(records),
        "frames": frames,
        "hours": round(seconds / 3600, 4),
        "sessions": len({r["session"] for r in records}),
        "splits": dict(Counter(r["split"] for r in records)),
        "variants": dict(Counter(r.get("variant", "") for r in records)),
        "generators": dict(Counter(r.get("generator") or "real" for r in records)),
        "grids": dict(Counter(f"{r['grid']['cols']}x{r['grid']['rows']}" for r in records if r.get("grid"))),
        "frame_sizes": dict(Counter(f"{r['width']}x{r['height']}" for r in records)),
        "fps": sorted({r["fps"] for r in records}),
        "captions": captions,
    }


def clip_record(**fields: Any) -> dict:
    """A manifest record; kept as a function so every writer produces the same keys."""
    required = ("id", "session", "source", "split", "variant", "fps", "width", "height", "frames",
                "grid", "captions", "path")
    missing = [k for k in required if k not in fields]
    if missing:
        raise NCError(f"clip record misses {missing}")
    return fields


def write_report(root: Path, name: str, report: dict) -> Path:
    """Write a job report (what was done, skipped, failed) under ``reports/``."""
    path = root / "reports" / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.json"
    atomic_write_bytes(path, json.dumps(report, indent=2, default=_json_default).encode())
    return path


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "__dataclass_fields__"):
        return asdict(obj)
    return str(obj)
