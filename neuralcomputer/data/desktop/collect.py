"""Desktop episodes: record a policy driving a fresh XFCE desktop into the project's dataset format.

One episode = one clip: a fresh :class:`~neuralcomputer.data.desktop.xsession.Desktop`, a :class:`Recorder`
thread grabbing frames on a fixed schedule (frame ``i`` due at ``t0 + i / fps``) and reading back the
pointer at each grab, and the policy driving an :class:`~neuralcomputer.data.desktop.actor.Actor` in the main
thread. Afterwards the actor's timestamped raw events and meta-actions are bucketed into frames
(:class:`~neuralcomputer.data.desktop.actions.FrameActions`), and the clip is written::

    clips/<id>.npz               frames_delta (U,H,W,3) distinct cursor-free framebuffers, frame_index (T,),
                                 cursor (T,3) = x, y, visible, pointer (T,2) int16, frame_time (T,) float64
                                 seconds since frame 0, cursor_drawn (T,) 0: readers draw the cursor in
                                 (data.desktop.episode.desktop_frames) at the size they read at
    clips/<id>.actions.jsonl     one FrameActions per frame (neuralcomputer.data.desktop.actions)
    manifest-desktop-<policy>-seed<S>.jsonl    kind "desktop", policy, seed, fps, size, frames,
                                 action_times, dropped_frames, px_per_frame, actions_per_s, ...
    reports/collect-desktop-*.json   what was collected, retried, skipped and why

Faults (Xvfb, dbus or the XFCE session dying, the policy raising): the episode is cut cleanly at the
last good frame when at least half of it was recorded, otherwise discarded and retried in a fresh
desktop (3 attempts); the batch goes on and the report lists every fault.

Memory: distinct framebuffers are held until the episode is written (a 1024x768 frame is 2.4 MB; a
mostly static desktop dedups well, a busy one does not: ~35 MB/s of recording in the worst case).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from neuralcomputer.data.dataset import (
    clip_record,
    split_for,
    write_clip_payload,
    write_manifest,
    write_report,
)
from neuralcomputer.data.desktop.actions import FrameActions, action_times, write_actions
from neuralcomputer.data.desktop.actor import Actor, ActorCancelled
from neuralcomputer.data.desktop.policies import (
    actions_per_second,
    default_captions,
    get_policy,
    pointer_speed,
)
from neuralcomputer.data.desktop.xsession import Desktop, DesktopError, bgra_to_rgb
from neuralcomputer.data.jobs import interruptible, pool_context, pool_options, run_task, stop_workers
from neuralcomputer.errors import NCError

ATTEMPTS = 3
MIN_KEEP = 0.5        # a faulty episode is kept, cut, when at least this share of its frames is good
CUT_MARGIN_S = 0.2    # frames this close before a detected fault are not trusted (a dying desktop)
POINTER_TOLERANCE = 2  # px between the logged and the read-back pointer


class EpisodeFault(NCError):
    """An episode that could not be recorded (the reason is in the message)."""


# --------------------------------------------------------------------------------------------------
# Capture

@dataclass
class Capture:
    """What a :class:`Recorder` captured: ``T`` frames referencing ``U`` distinct framebuffers."""

    fps: float
    t0: float = 0.0                                          # monotonic time frame 0 was due
    buffers: list[np.ndarray] = field(default_factory=list)  # U x (H, W, 3) uint8, cursor-free
    buffer_index: list[int] = field(default_factory=list)    # (T,) into buffers
    times: list[float] = field(default_factory=list)         # (T,) monotonic time each grab started
    pointer: list[tuple[int, int]] = field(default_factory=list)  # (T,) read back at each grab
    dropped: int = 0                                         # schedule slots missed (grab > 1 interval late)
    error: str | None = None                                 # why capture stopped early
    error_time: float | None = None

    def __len__(self) -> int:
        return len(self.times)

    def truncate(self, frames: int) -> None:
        """Keep only the first ``frames`` frames (an episode cut where its desktop failed)."""
        del self.buffer_index[frames:], self.times[frames:], self.pointer[frames:]


class Recorder(threading.Thread):
    """Grabs the screen at ``fps`` on a fixed schedule, reading back the pointer at each grab.

    Stops after ``max_frames`` frames, on :meth:`stop`, or when the desktop dies (``capture.error``);
    then calls ``on_stop`` (the collector cancels the actor with it). A slot whose grab would start
    more than one interval late is skipped and counted in ``capture.dropped``, never filled with a
    duplicate.
    """

    def __init__(self, desktop: Desktop, fps: float = 15.0, max_frames: int | None = None,
                 on_stop: Callable[[], None] | None = None) -> None:
        super().__init__(name="desktop-recorder", daemon=True)
        self.desktop = desktop
        self.capture = Capture(fps=fps)
        self.max_frames = max_frames
        self.on_stop = on_stop
        self.ready = threading.Event()
        self._stop_event = threading.Event()

    def stop(self) -> None:
        """Ask the capture loop to end after the current frame (then ``join``)."""
        self._stop_event.set()

    def run(self) -> None:
        try:
            self._record()
        except Exception as exc:  # the X connection broke: Xvfb died
            self.capture.error = f"capture failed: {type(exc).__name__}: {exc}".strip()
            self.capture.error_time = time.monotonic()
        finally:
            self.ready.set()
            if self.on_stop is not None:
                self.on_stop()

    def _record(self) -> None:
        import mss
        from Xlib import display as xdisplay

        d, cap = self.desktop, self.capture
        interval = 1.0 / cap.fps
        region = {"left": 0, "top": 0, "width": d.width, "height": d.height}
        x = xdisplay.Display(d.display)
        root = x.screen().root
        try:
            with mss.MSS(display=d.display) as sct:
                cap.t0 = time.monotonic()
                self.ready.set()
                slot = 0
                previous: np.ndarray | None = None
                while not self._stop_event.is_set() and (self.max_frames is None or len(cap) < self.max_frames):
                    due = cap.t0 + slot * interval
                    if self._stop_event.wait(max(0.0, due - time.monotonic())):
                        break
                    while time.monotonic() - due > interval:  # too late for this slot: drop it, say so
                        cap.dropped += 1
                        slot += 1
                        due += interval
                    if not d.alive():
                        cap.error, cap.error_time = "the desktop died (Xvfb, dbus or xfce4-session exited)", time.monotonic()
                        break
                    t = time.monotonic()
                    reply = root.query_pointer()
                    shot = sct.grab(region)
                    frame = bgra_to_rgb(shot.bgra, d.height, d.width)
                    if previous is None or not np.array_equal(frame, previous):
                        cap.buffers.append(frame)
                        previous = frame
                    cap.buffer_index.append(len(cap.buffers) - 1)
                    cap.times.append(t)
                    cap.pointer.append((int(reply.root_x), int(reply.root_y)))
                    slot += 1
        finally:
            x.close()  # also when Xvfb died mid-grab: no leaked X connection per faulty episode


# --------------------------------------------------------------------------------------------------
# Actions per frame

def bucket_actions(capture: Capture, events: Sequence[tuple[float, dict]], metas: Sequence[tuple[float, dict]]
                   ) -> list[FrameActions]:
    """Assign timestamped events and meta-actions to frames: frame ``i`` gets those logged in
    ``[times[i], times[i+1])`` (before frame 0: frame 0; after the last frame's interval: dropped)."""
    times = np.asarray(capture.times)
    end = times[-1] + 1.0 / capture.fps if len(times) else 0.0
    frames = [FrameActions(i, round(float(t - capture.t0), 4), capture.pointer[i]) for i, t in enumerate(times)]
    for log, attr in ((events, "events"), (metas, "meta")):
        for t, item in log:
            if t >= end or not frames:
                continue
            i = max(0, int(np.searchsorted(times, t, side="right")) - 1)
            getattr(frames[i], attr).append(item)
    return frames


def pointer_mismatches(frames: Sequence[FrameActions], tolerance: int = POINTER_TOLERANCE) -> list[dict]:
    """Frames whose read-back pointer is not where the log says it is.

    The expected position at frame ``i`` is the last logged ``move`` before its capture (events of
    frame ``i`` happen after it). An event injected just before the capture but stamped just after it
    lands in frame ``i`` itself, so its first move is accepted too.
    """
    bad, expected = [], None
    for f in frames:
        moves = [(e["x"], e["y"]) for e in f.events if e["type"] == "move"]
        candidates = [p for p in (expected, moves[0] if moves else None) if p is not None]
        if expected is not None and min(math.dist(p, f.pointer) for p in candidates) > tolerance:
            bad.append({"frame": f.frame, "logged": expected, "read_back": list(f.pointer)})
        if moves:
            expected = moves[-1]
    return bad


# --------------------------------------------------------------------------------------------------
# One episode

@dataclass
class Episode:
    """A recorded episode before it is written: capture, per-frame actions, figures, fault if cut."""

    capture: Capture
    frames: list[FrameActions]
    metas: list[dict]
    start_seconds: float
    fault: str | None = None
    mismatches: list[dict] = field(default_factory=list)

    @property
    def px_per_frame(self) -> float:
        return pointer_speed(np.asarray(self.capture.pointer))

    @property
    def actions_per_s(self) -> float:
        return actions_per_second(sum(len(f.meta) for f in self.frames), len(self.frames), self.capture.fps)


def episode_rngs(seed: int, index: int) -> tuple[np.random.Generator, np.random.Generator]:
    """The policy's and the actor's generators of episode ``index`` of a job seeded ``seed``."""
    policy_seq, actor_seq = np.random.SeedSequence([seed, index]).spawn(2)
    return np.random.default_rng(policy_seq), np.random.default_rng(actor_seq)


def record_episode(policy_name: str, seed: int, index: int, *, seconds: float, fps: float = 15.0,
                   size: tuple[int, int] = (1024, 768), workdir: str | Path | None = None,
                   policy: Any = None) -> Episode:
    """Run one episode in a fresh desktop; raises EpisodeFault when it failed beyond cutting."""
    policy = policy if policy is not None else get_policy(policy_name)
    policy_rng, actor_rng = episode_rngs(seed, index)
    n_frames = max(1, round(seconds * fps))
    try:
        with Desktop(*size, workdir=workdir) as desktop:
            actor = Actor(desktop, rng=actor_rng)
            recorder = Recorder(desktop, fps, max_frames=n_frames, on_stop=actor.cancel)
            recorder.start()
            recorder.ready.wait()
            fault, fault_time = None, None
            try:
                policy.run(actor, desktop, policy_rng, seconds)
            except ActorCancelled:
                pass
            except Exception as exc:
                fault, fault_time = f"policy {policy_name} failed: {type(exc).__name__}: {exc}", time.monotonic()
                recorder.stop()
            recorder.join(timeout=seconds + 30.0)  # a policy that ends early leaves idle frames
            recorder.stop()
            recorder.join()
            actor.release_all()
            capture = recorder.capture
            if capture.error:
                # The desktop died: the policy's own error (a broken X connection) is a symptom.
                fault, fault_time = capture.error, capture.error_time
            elif not desktop.alive():
                fault, fault_time = "the desktop died during the episode", time.monotonic()
            start_seconds = desktop.start_seconds
            actor.close()
    except DesktopError as exc:
        raise EpisodeFault(f"desktop: {exc}") from None
    if fault is not None:
        good = sum(1 for t in capture.times if t < fault_time - CUT_MARGIN_S)
        if good < MIN_KEEP * n_frames:
            raise EpisodeFault(f"{fault} after {good} of {n_frames} frames")
        capture.truncate(good)
    if not len(capture):
        raise EpisodeFault("no frame was captured")
    frames = bucket_actions(capture, actor.events, actor.metas)
    metas = [m for f in frames for m in f.meta]
    return Episode(capture, frames, metas, start_seconds, fault, pointer_mismatches(frames))


def episode_id(policy: str, seed: int, index: int) -> str:
    """The clip id of episode ``index`` of a (policy, seed) batch: stable across reruns and workers."""
    return f"desktop-{policy}-s{seed}-{index:05d}"


def write_episode(out: Path, clip_id: str, episode: Episode, *, policy: str, seed: int,
                  captions: dict[str, str]) -> dict:
    """Write an episode's payload and actions (atomically) and return its manifest record."""
    cap = episode.capture
    # The framebuffers are stored cursor-free (each distinct one once) and the cursor is drawn in when
    # the clip is read (data.desktop.episode.desktop_frames): at whatever size a reader wants, so a
    # model at 256x192 sees a crisp arrow instead of a 3x5 px smudge of the screen-size one.
    used = sorted(set(cap.buffer_index))
    remap = {b: u for u, b in enumerate(used)}
    frame_index = np.asarray([remap[b] for b in cap.buffer_index], dtype=np.int32)  # (T,)
    unique = np.stack([cap.buffers[b] for b in used])  # (U, H, W, 3) uint8, cursor-free
    height, width = unique.shape[1:3]
    pointer = np.asarray(cap.pointer, dtype=np.int16).reshape(-1, 2)               # (T, 2)
    frame_time = np.asarray(cap.times, dtype=np.float64) - cap.t0                  # (T,)
    cursor = np.concatenate([pointer, np.ones((len(cap), 1), np.int16)], axis=1)   # (T, 3): x, y, visible
    rel = f"clips/{clip_id}.npz"
    actions_rel = f"clips/{clip_id}.actions.jsonl"
    write_actions(out / actions_rel, episode.frames)
    write_clip_payload(out / rel, unique, frame_index, [""] * len(unique), cursor,
                       extra={"pointer": pointer, "frame_time": frame_time,
                              "cursor_drawn": np.zeros(len(cap), np.uint8)})
    return clip_record(
        id=clip_id, session=clip_id, source=f"xfce:{policy}", kind="desktop", split=split_for(clip_id),
        variant=policy, generator=f"desktop-{policy}", policy=policy, seed=seed, fps=cap.fps, width=width,
        height=height, frames=len(cap), grid=None, captions=captions, path=rel, actions=actions_rel,
        action_times=action_times(episode.frames), dropped_frames=cap.dropped,
        px_per_frame=round(episode.px_per_frame, 2), actions_per_s=round(episode.actions_per_s, 3),
        pointer_mismatches=len(episode.mismatches), start_seconds=round(episode.start_seconds, 2),
        cut=episode.fault is not None, fault=episode.fault, unique_frames=len(unique), cursor_at_read=True,
    )


def _captions(policy: Any, policy_name: str, metas: list[dict]) -> dict[str, str]:
    if hasattr(policy, "captions"):
        return policy.captions(metas)
    return default_captions(f"{policy_name} activity on an XFCE desktop", metas)


def collect_episode(policy_name: str, seed: int, index: int, out: str | Path, *, seconds: float,
                    fps: float = 15.0, size: tuple[int, int] = (1024, 768), attempts: int = ATTEMPTS,
                    workdir: str | Path | None = None) -> dict:
    """Record and write episode ``index`` with up to ``attempts`` tries, each in a fresh desktop.

    Returns ``{"id", "record" (None when every attempt failed), "faults": [reason per failed attempt]}``.
    """
    out = Path(out)
    clip_id = episode_id(policy_name, seed, index)
    faults: list[str] = []
    for attempt in range(1, attempts + 1):
        policy = get_policy(policy_name)
        try:
            episode = record_episode(policy_name, seed, index, seconds=seconds, fps=fps, size=size,
                                     workdir=workdir, policy=policy)
        except EpisodeFault as exc:
            faults.append(f"attempt {attempt}: {exc}")
            continue
        except Exception as exc:  # anything else that broke with the desktop (an X error, ...)
            faults.append(f"attempt {attempt}: {type(exc).__name__}: {exc}")
            continue
        if episode.fault:
            faults.append(f"attempt {attempt}: cut at frame {len(episode.frames)}: {episode.fault}")
        record = write_episode(out, clip_id, episode, policy=policy_name, seed=seed,
                               captions=_captions(policy, policy_name, episode.metas))
        record["attempts"] = attempt
        if getattr(policy, "log", None):  # a purposeful policy's tasks, timed from frame 0 like the actions
            t0 = episode.capture.t0
            record["tasks"] = [{**r.to_json(), "start": round(r.start - t0, 3), "end": round(r.end - t0, 3)}
                               for r in policy.log]
        return {"id": clip_id, "record": record, "faults": faults}
    return {"id": clip_id, "record": None, "faults": faults}


# --------------------------------------------------------------------------------------------------
# A batch

@dataclass
class CollectSummary:
    """Outcome of :func:`collect_desktop`."""

    policy: str
    out: str
    collected: list[str] = field(default_factory=list)
    failed: dict[str, list[str]] = field(default_factory=dict)   # episode id -> why, per attempt
    retried: dict[str, list[str]] = field(default_factory=dict)  # collected after faults (or cut)
    manifest: str | None = None
    report: str | None = None
    frames: int = 0
    dropped_frames: int = 0
    px_per_frame: float = 0.0
    actions_per_s: float = 0.0
    seconds: float = 0.0


def manifest_for(policy: str, seed: int, shard: tuple[int, int]) -> str:
    """The manifest file name of a batch (shard ``k`` of ``n``): batches never overwrite each other."""
    k, n = shard
    return f"manifest-desktop-{policy}-seed{seed}" + (f"-{k:05d}-of-{n:05d}" if n > 1 else "") + ".jsonl"


def _job(args: tuple) -> dict:
    policy, seed, index, out, seconds, fps, size = args
    # run_task: a worker whose job was killed tears its desktop down before it leaves (jobs.worker_init)
    return run_task(collect_episode, policy, seed, index, out, seconds=seconds, fps=fps, size=size)


def collect_desktop(policy: str, episodes: int, seconds: float, out: str | Path, *, workers: int = 1,
                    fps: float = 15.0, size: tuple[int, int] = (1024, 768), seed: int = 0,
                    shard: tuple[int, int] = (0, 1), progress: bool = True) -> CollectSummary:
    """Collect ``episodes`` episodes of ``policy`` (those of shard K of N), ``workers`` desktops at once.

    Episode ``i`` is always ``episode_id(policy, seed, i)`` with generators from ``(seed, i)``. The
    manifest is written after the clips; a report under ``out/reports`` lists faults and skips.
    """
    from tqdm import tqdm

    get_policy(policy)  # unknown policy: fail before starting anything
    if episodes < 1 or workers < 1 or seconds <= 0 or fps <= 0:
        raise NCError(f"need episodes >= 1, workers >= 1, seconds > 0, fps > 0; got {episodes}, {workers}, {seconds}, {fps}")
    out = Path(out)
    (out / "clips").mkdir(parents=True, exist_ok=True)
    k, n = shard
    jobs = [(policy, seed, i, str(out), seconds, fps, size) for i in range(k, episodes, n)]
    summary = CollectSummary(policy=policy, out=str(out))
    results: list[dict] = []
    started = time.monotonic()
    bar = tqdm(total=len(jobs), desc=f"collect {policy}", unit="episode", disable=not progress)

    def take(result: dict) -> None:
        results.append(result)
        bar.update(1)
        if result["record"] is None:
            bar.write(f"skipped {result['id']}: {result['faults'][-1] if result['faults'] else 'unknown'}")

    # SIGTERM unwinds like Ctrl-C: workers and desktops go, and the report of what was done is written
    with interruptible():
        try:
            if workers == 1 or len(jobs) == 1:
                for job in jobs:
                    take(_job(job))
            else:
                context = pool_context()
                # Each worker leaves, desktop torn down, when this process is gone, even after SIGKILL.
                pool = ProcessPoolExecutor(min(workers, len(jobs)), mp_context=context, **pool_options())
                try:
                    futures = {pool.submit(_job, job): job for job in jobs}
                    for future in as_completed(futures):
                        job = futures[future]
                        try:
                            take(future.result())
                        except Exception as exc:  # the worker process died (OOM killer, ...)
                            take({"id": episode_id(policy, seed, job[2]), "record": None,
                                  "faults": [f"worker died: {type(exc).__name__}: {exc}"]})
                except BaseException:
                    # Ctrl-C / SIGTERM here: stop the workers so each tears its desktop down, then wait for
                    # them ourselves: the executor's own shutdown(wait=True) can hang once workers died
                    # mid-task (seen under load), so join with a deadline and kill what is left.
                    stop_workers(list(getattr(pool, "_processes", {}).values()))
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise
                pool.shutdown(wait=True)
        finally:
            bar.close()
            _finish(out, summary, results, seed, shard, fps, size, seconds, time.monotonic() - started)
    return summary


def _finish(out: Path, summary: CollectSummary, results: list[dict], seed: int, shard: tuple[int, int],
            fps: float, size: tuple[int, int], seconds: float, wall: float) -> None:
    """Manifest (after the clips exist) and report; also runs when the batch was interrupted."""
    records = sorted((r["record"] for r in results if r["record"] is not None), key=lambda r: r["id"])
    for r in results:
        if r["record"] is None:
            summary.failed[r["id"]] = r["faults"]
        else:
            summary.collected.append(r["id"])
            if r["faults"]:
                summary.retried[r["id"]] = r["faults"]
    if records:
        path = out / manifest_for(summary.policy, seed, shard)
        write_manifest(path, records)
        summary.manifest = str(path)
        summary.frames = sum(r["frames"] for r in records)
        summary.dropped_frames = sum(r["dropped_frames"] for r in records)
        weights = [r["frames"] for r in records]
        summary.px_per_frame = round(float(np.average([r["px_per_frame"] for r in records], weights=weights)), 2)
        summary.actions_per_s = round(float(np.average([r["actions_per_s"] for r in records], weights=weights)), 3)
    summary.seconds = round(wall, 1)
    report = {"job": "collect-desktop", "policy": summary.policy, "seed": seed, "shard": list(shard), "fps": fps,
              "size": list(size), "seconds_per_episode": seconds, "wall_seconds": summary.seconds,
              "collected": summary.collected, "skipped": summary.failed, "retried_or_cut": summary.retried,
              "frames": summary.frames, "dropped_frames": summary.dropped_frames,
              "px_per_frame": summary.px_per_frame, "actions_per_s": summary.actions_per_s}
    summary.report = str(write_report(out, "collect-desktop", report))
