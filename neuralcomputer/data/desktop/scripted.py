"""The ``scripted`` policy: a purposeful desktop user that performs real tasks and checks them.

The paper's lesson (Chapter 5): purposeful trajectories beat ten times more random ones. Each
task here is a small program that reads the live desktop, acts through the :class:`Actor` (so
every input lands in the action log), and verifies its effect on the world: a window appeared,
a file exists inside the episode's ``HOME`` with the typed content, a title changed, the
calculator's display reads the right number. Targets are found, never assumed:

- window geometry and state from the X server (``desktop.windows()``, ``_NET_FRAME_EXTENTS``),
- widgets (panel buttons, menu items, calculator keys, file names) from the accessibility tree
  (:mod:`neuralcomputer.data.desktop.a11y`),
- the title bar's buttons from the pixels of the title bar itself (xfwm4 draws them, they are
  not in the accessibility tree), and "an empty spot on the desktop" from the window boxes.

The policy picks tasks with the episode's ``rng`` (never the same one twice in a row) until the
episode's time is up. A task that cannot find its target raises :class:`TaskFailed`; every wait
has a timeout and each task has a deadline, so nothing hangs; after a failure the desktop is
tidied (open menus escaped). Nothing logs out or shuts down: the session menu's "Log Out" is
never a target and Alt+F4 is only sent after checking that an application window has focus.

Each attempt is recorded in :attr:`ScriptedPolicy.log` as a :class:`TaskRecord` (name, success,
start and end on the ``time.monotonic`` clock, detail); :meth:`ScriptedPolicy.describe` turns them
into caption lines for the episode. ``python -m neuralcomputer.data.desktop.scripted --help`` runs tasks
on a fresh desktop and prints per-task success rates and the policy's speed.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from neuralcomputer.data.desktop import a11y
from neuralcomputer.data.desktop.actor import ActorCancelled
from neuralcomputer.data.desktop.policies import default_captions, register
from neuralcomputer.data.desktop.scripted_tasks import CLOSING_TASKS
from neuralcomputer.data.desktop.task_context import (
    MAX_APP_WINDOWS,
    STRAY_WINDOWS,
    TASK_SECONDS,
    TASKS,
    ActorLike,
    DesktopLike,
    EpisodeOver,
    TaskContext,
    TaskFailed,
    TaskRecord,
)
from neuralcomputer.errors import NCError

# ---------------------------------------------------------------------------------------------
# The policy.
# ---------------------------------------------------------------------------------------------

SEED_FILES = {
    "Documents/readme.txt": "This is the home folder of a neural computer's training desktop.\n",
    "Documents/todo.txt": "- water the plants\n- call the bank\n- finish the report\n",
    "Documents/long.txt": "".join(f"line {i}: the quick brown fox jumps over the lazy dog\n" for i in range(1, 301)),
    "Projects/plan.md": "# Plan\n\n1. collect data\n2. train\n3. evaluate\n",
}
SEED_DIRS = ("Documents", "Music", "Pictures", "Projects", "Downloads")


def seed_home(home: Path) -> None:
    """Give the episode's fresh HOME the folders and files a person's home has (tasks open them)."""
    for d in SEED_DIRS:
        (home / d).mkdir(parents=True, exist_ok=True)
    for rel, text in SEED_FILES.items():
        path = home / rel
        if not path.exists():
            path.write_text(text)


@dataclass
class ScriptedPolicy:
    """A purposeful agent: random real tasks (``TASKS``), each found on and verified against the live desktop.

    ``tasks`` restricts the choice (names from ``TASKS``); ``task_seconds`` is each task's deadline.
    After :meth:`run`, :attr:`log` holds one :class:`TaskRecord` per attempt.
    """

    tasks: tuple[str, ...] = tuple(TASKS)
    task_seconds: float = TASK_SECONDS
    name: str = "scripted"
    log: list[TaskRecord] = field(default_factory=list)

    def __post_init__(self) -> None:
        unknown = [t for t in self.tasks if t not in TASKS]
        if unknown:
            raise NCError(f"unknown scripted task(s) {', '.join(unknown)}; known: {', '.join(TASKS)}")

    def run(self, actor: ActorLike, desktop: DesktopLike, rng: np.random.Generator, seconds: float) -> None:
        """Perform random tasks until ``seconds`` have passed (the last one is cut at the deadline)."""
        episode_end = time.monotonic() + seconds
        home = Path(desktop.env.get("HOME", str(Path.home())))
        seed_home(home)
        previous = None
        while time.monotonic() < episode_end - 1.0 and not getattr(actor, "cancelled", False):
            name = self._choose(rng, desktop, previous)
            previous = name
            if self.run_task(name, actor, desktop, rng, episode_end) is None:
                break

    def _choose(self, rng: np.random.Generator, desktop: DesktopLike, previous: str | None) -> str:
        choices = [t for t in self.tasks if t != previous] or list(self.tasks)
        try:
            crowded = len(TaskContext(None, desktop, rng, time.monotonic() + 5).app_windows()) >= MAX_APP_WINDOWS  # type: ignore[arg-type]
        except Exception:  # a failed window query only loses the preference
            crowded = False
        closing = [t for t in choices if t in CLOSING_TASKS]
        if crowded and closing:
            choices = closing
        return choices[int(rng.integers(len(choices)))]

    def run_task(self, name: str, actor: ActorLike, desktop: DesktopLike, rng: np.random.Generator,
                 episode_end: float | None = None) -> TaskRecord | None:
        """Run one task now and log it; ``None`` when the episode ended before it finished."""
        seed_home(Path(desktop.env.get("HOME", str(Path.home()))))
        start = time.monotonic()
        end_of_episode = episode_end if episode_end is not None else start + self.task_seconds + 5
        ctx = TaskContext(actor, desktop, rng, end_of_episode, self.task_seconds)
        try:
            detail = TASKS[name](ctx)
            record = TaskRecord(name, True, start, time.monotonic(), detail)
        except EpisodeOver:
            self.log.append(TaskRecord(name, False, start, time.monotonic(), "cut by the end of the episode"))
            return None
        except ActorCancelled:  # the collector stopped the episode: the normal end, passed on
            self.log.append(TaskRecord(name, False, start, time.monotonic(), "cut by the end of the episode"))
            raise
        except (TaskFailed, a11y.A11yUnavailable) as exc:
            record = TaskRecord(name, False, start, time.monotonic(), str(exc))
            self._tidy(ctx)
        except Exception as exc:
            # a bug in one task must not end the episode, but a dead desktop must (the collector cuts it)
            alive = getattr(desktop, "alive", lambda: True)
            if not alive():
                raise
            record = TaskRecord(name, False, start, time.monotonic(), f"{type(exc).__name__}: {exc}")
            self._tidy(ctx)
        self.log.append(record)
        return record

    def _tidy(self, ctx: TaskContext) -> None:
        """After a failure: close stray menus and dialogs a task may have left open."""
        ctx.deadline = min(ctx.episode_end, time.monotonic() + 8)
        try:
            for _ in range(3):
                if ctx.menu_open():
                    ctx.actor.key(["Escape"])
                    ctx.pause(0.2, 0.4)
            for w in ctx.app_windows():
                if getattr(w, "type", "normal") == "dialog" or STRAY_WINDOWS.search(w.title):
                    ctx.focus(w)
                    ctx.actor.key(["Escape"])
                    ctx.pause(0.3, 0.5)
                    if ctx.refresh(w) is not None and getattr(ctx.active(), "id", None) == w.id:
                        ctx.actor.key(["alt", "F4"])  # focus checked on that very window just above
        except (TaskFailed, EpisodeOver, a11y.A11yUnavailable, NCError):
            pass

    def captions(self, metas: list[dict[str, Any]]) -> dict[str, str]:
        """The episode's captions: the tasks attempted (semantic), then the meta-actions (detailed)."""
        done = [r for r in self.log if r.ok]
        names = ", ".join(r.name.replace("_", " ") for r in done) or "no task completed"
        caps = default_captions(f"purposeful tasks on an XFCE desktop: {names}", metas)
        caps["regular"] += " Tasks: " + "; ".join(self.describe()) + "."
        return caps

    def describe(self) -> list[str]:
        """One caption line per task attempt, e.g. ``"calculator_buttons: ok (12+7=19)"``."""
        return [f"{r.name}: {'ok' if r.ok else 'failed'}" + (f" ({r.detail})" if r.detail else "") for r in self.log]


def task_summary(records: Iterable[TaskRecord]) -> dict[str, dict[str, float]]:
    """Per task: attempts, successes, success rate and mean seconds."""
    out: dict[str, dict[str, float]] = {}
    for r in records:
        s = out.setdefault(r.name, {"attempts": 0, "ok": 0, "seconds": 0.0})
        s["attempts"] += 1
        s["ok"] += int(r.ok)
        s["seconds"] += r.end - r.start
    for s in out.values():
        s["rate"] = s["ok"] / s["attempts"]
        s["seconds"] = s["seconds"] / s["attempts"]
    return out


register("scripted", ScriptedPolicy)


def main(argv: list[str] | None = None) -> None:
    """Measure the policy: each task's success rate, and px/frame and actions/s of recorded episodes."""
    import argparse
    import json

    from neuralcomputer.data.desktop.actor import Actor
    from neuralcomputer.data.desktop.collect import record_episode
    from neuralcomputer.data.desktop.xsession import Desktop

    parser = argparse.ArgumentParser(prog="python -m neuralcomputer.data.desktop.scripted", description=main.__doc__)
    parser.add_argument("--runs", type=int, default=3, help="fresh desktops; each runs every task once (shuffled)")
    parser.add_argument("--episodes", type=int, default=3, help="scripted episodes recorded for the speed figures")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each episode")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tasks", nargs="*", default=list(TASKS), help="task names (default: all)")
    args = parser.parse_args(argv)
    records: list[TaskRecord] = []
    for run in range(args.runs):
        rng = np.random.default_rng([args.seed, run])
        policy = ScriptedPolicy(tasks=tuple(args.tasks))
        with Desktop() as desktop:  # Desktop retries a start that fails (START_ATTEMPTS)
            actor = Actor(desktop, rng=np.random.default_rng([args.seed, run, 1]))
            for name in rng.permutation(args.tasks):
                record = policy.run_task(str(name), actor, desktop, rng)
                if record is not None:
                    print(json.dumps({"run": run, **record.to_json()}), flush=True)
            actor.close()
        records += policy.log
    episodes = []
    for index in range(args.episodes):
        policy = ScriptedPolicy(tasks=tuple(args.tasks))
        ep = record_episode("scripted", args.seed, index, seconds=args.seconds, policy=policy)
        episodes.append({"px_per_frame": round(ep.px_per_frame, 2), "actions_per_s": round(ep.actions_per_s, 3),
                         "frames": len(ep.frames), "tasks": len(policy.log), "tasks_ok": sum(r.ok for r in policy.log),
                         "pointer_mismatches": len(ep.mismatches)})
        print(json.dumps({"episode": index, **episodes[-1]}), flush=True)
    print(json.dumps({"tasks": task_summary(records), "episodes": episodes}, indent=1))


if __name__ == "__main__":
    main()
