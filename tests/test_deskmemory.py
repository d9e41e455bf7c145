"""DeskDelta's transition memory: recall what the training episodes' screens did, replay it exactly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from neuralcomputer.cli import main
from neuralcomputer.config import preset_config
from neuralcomputer.data.desktop.actions import FrameActions, meta_to_events
from neuralcomputer.errors import NCError
from neuralcomputer.models.deskdelta import DeskDeltaModel, step_window
from neuralcomputer.models.deskmemory import (
    CLICKS,
    FEATURES,
    KEYS,
    Change,
    TransitionMemory,
    _caret_boxes,
    _caret_moved,
    _caret_row,
    _mean_gap,
    _patch_rms,
    input_features,
    thumbnail,
)
from neuralcomputer.pipelines.deskdelta import MEMORY_FILE, DeskDeltaRollout
from neuralcomputer.pipelines.load import load_pipeline
from neuralcomputer.runtime.computer import NeuralComputer
from tests.guiworld_helpers import _frame, make_desktop_dataset
from tests.runtime_helpers import replay_live

SCREEN = (128, 96)  # the pointer's coordinates (width, height)
H, W = 48, 64       # the model's frames


def _episode(rng: np.random.Generator, frames: int = 24) -> tuple[np.ndarray, np.ndarray, list[FrameActions]]:
    """A desktop whose window toggles one step after each click (every 4th record), the pointer
    wandering: distinct framebuffers (closed, open), which one each frame shows, the records."""
    fbs = np.stack([_frame(W, H, False, (0, 0), cursor=False), _frame(W, H, True, (0, 0), cursor=False)])
    index, actions, open_ = [], [], False
    pointer = (int(rng.integers(0, SCREEN[0])), int(rng.integers(0, SCREEN[1])))
    for f in range(frames):
        index.append(int(open_))
        events = [{"type": "move", "x": pointer[0], "y": pointer[1]}]
        if f % 4 == 3:
            events += [{"type": "down", "button": 1}, {"type": "up", "button": 1}]
            open_ = not open_
        actions.append(FrameActions(f, f / 15, pointer, events))
        pointer = (int(np.clip(pointer[0] + rng.integers(-12, 13), 0, SCREEN[0] - 1)),
                   int(np.clip(pointer[1] + rng.integers(-9, 10), 0, SCREEN[1] - 1)))
    return fbs, np.asarray(index), actions


def _steps(click: bool, pointer: tuple[int, int] = (60, 40)) -> list[FrameActions]:
    """Eight quiet steps, the last with a click at ``pointer`` when ``click``."""
    steps = [FrameActions(i, i / 15, pointer) for i in range(8)]
    if click:
        steps[-1].events += [{"type": "down", "button": 1}, {"type": "up", "button": 1}]
    return steps


def test_memory_replays_the_stored_change_exactly_and_only_where_input_asks() -> None:
    rng = np.random.default_rng(0)
    episodes = [_episode(rng) for _ in range(10)]  # 50 clicks: some near any place on the screen
    memory = TransitionMemory.build(episodes, SCREEN)
    closed, opened = episodes[0][0]
    assert len(memory) == 10 * 23 and memory.changes == 2  # 50 toggles, two distinct changes stored once
    change, _ = memory.recall(closed, _steps(click=True), SCREEN)
    assert change is not None and (change.apply(closed) == opened).all()  # the window drawn exactly
    change, _ = memory.recall(opened, _steps(click=True), SCREEN)
    assert change is not None and (change.apply(opened) == closed).all()  # and closed again
    assert memory.recall(closed, _steps(click=False), SCREEN)[0] is None  # a still pointer changes nothing
    # the key: a click in the last step is "age 0", one 3 steps earlier is not the same situation
    earlier = _steps(False)
    earlier[4].events += [{"type": "down", "button": 1}, {"type": "up", "button": 1}]
    now, before = input_features(_steps(True), SCREEN), input_features(earlier, SCREEN)
    assert now[4] == 1 and now[7] == 0 and now[8] == 1 and now[9] == 1 and before[7] == 3
    assert input_features(_steps(False), SCREEN)[7] == 20  # no button event in the window
    # a user's click (press and release in one step) and the collector's (release a step later) are the
    # same situation once both are let go
    user, collector = _steps(False), _steps(False)
    user[5].events += [{"type": "down", "button": 1}, {"type": "up", "button": 1}]
    collector[5].events.append({"type": "down", "button": 1})
    collector[6].events.append({"type": "up", "button": 1})
    assert (input_features(user, SCREEN) == input_features(collector, SCREEN)).all()
    held = _steps(False)
    held[5].events.append({"type": "down", "button": 1})  # pressed, not let go: a drag, not a click
    assert input_features(held, SCREEN)[9] == 0


def test_a_change_that_does_not_fit_the_present_screen_is_not_replayed() -> None:
    """The fit check: a window opens where the training screens were bare; over something else there
    (here a red panel) the same click replays nothing, unless the check is off."""
    rng = np.random.default_rng(2)
    episodes = [_episode(rng) for _ in range(10)]
    closed, opened = episodes[0][0]
    covered = closed.copy()
    covered[10:30, 15:50] = (255, 0, 0)  # where the window opens (rows 20-60, cols 30-100 at 96x128)
    checked = TransitionMemory.build(episodes, SCREEN)  # the default: 8 neighbours, 24 levels
    plain = TransitionMemory(checked.arrays, {**checked.config, "fit_tolerance": None})
    assert plain.recall(covered, _steps(click=True), SCREEN)[0] is not None  # pasted over the red panel
    assert checked.recall(covered, _steps(click=True), SCREEN)[0] is None
    change, _ = checked.recall(closed, _steps(click=True), SCREEN)  # where it fits it still replays
    assert change is not None and (change.apply(closed) == opened).all()


def _clicked(x: int, opens: bool) -> tuple[np.ndarray, np.ndarray, list[FrameActions]]:
    """Twelve quiet steps with a click at (``x``, 40) in the ninth; the window opens after it if ``opens``."""
    fbs = np.stack([_frame(W, H, False, (0, 0), cursor=False), _frame(W, H, True, (0, 0), cursor=False)])
    click = [{"type": "down", "button": 1}, {"type": "up", "button": 1}]
    actions = [FrameActions(f, f / 15, (x, 40), click if f == 8 else []) for f in range(12)]
    return fbs, np.asarray([int(opens and f >= 9) for f in range(12)]), actions


def test_a_bias_towards_a_change_replays_a_change_as_near_as_the_nearest_nothing() -> None:
    """Two training clicks 2 px either side of the present one, the first stored changed nothing, the
    other opened the window: the nearest (the tie's earliest) says nothing; with ``change_bias`` the
    change within that much more distance is replayed."""
    memory = TransitionMemory.build([_clicked(62, opens=False), _clicked(58, opens=True)], SCREEN)
    biased = TransitionMemory(memory.arrays, {**memory.config, "change_bias": 0.3})
    closed = _frame(W, H, False, (0, 0), cursor=False)
    assert memory.recall(closed, _steps(click=True), SCREEN)[0] is None
    change, _ = biased.recall(closed, _steps(click=True), SCREEN)
    assert change is not None and (change.apply(closed) == _frame(W, H, True, (0, 0), cursor=False)).all()
    assert biased.recall(closed, _steps(click=False), SCREEN)[0] is None  # no click: nothing near changes


def _terminal(caret: tuple[int, int], typed: str = "", thin: bool = False, band: bool = False) -> np.ndarray:
    """A black 48x64 terminal: the glyphs of ``typed`` from ``caret`` (row, col of the first cell,
    cells 8x4 px), then the white caret block after them (``thin``: an editor's 1 px caret line;
    ``band``: a grey status bar along the bottom)."""
    fb = np.zeros((H, W, 3), np.uint8)
    if band:
        fb[40:, :] = 128
    y, x = caret
    for ch in typed:
        glyph = np.zeros((8, 4), bool)
        glyph[: 2 + "abc".index(ch) * 2, ::2] = True  # a distinct pattern per key
        fb[y:y + 8, x:x + 4][glyph] = 180
        x += 4
    fb[y:y + 8, x:x + (1 if thin else 4)] = 255
    return fb


def _typing_episode(caret: tuple[int, int], text: str, late: int = 0,
                    **look: bool) -> tuple[np.ndarray, np.ndarray, list[FrameActions]]:
    """Typing ``text`` into the terminal (``look``: :func:`_terminal`'s), a key every other step; each
    glyph shows one step later (``late`` 1: two steps later, the step after the press step as the
    memory keys it)."""
    fbs = np.stack([_terminal(caret, text[:n], **look) for n in range(len(text) + 1)])
    index, actions = [0], []
    for f in range(2 * len(text) + 1):
        events = [{"type": "key_down", "key": text[f // 2]}, {"type": "key_up", "key": text[f // 2]}]\
            if f % 2 == 0 and f // 2 < len(text) else []
        actions.append(FrameActions(f, f / 15, (100, 80), events))
        if f:
            index.append(min((f + 1 - late) // 2, len(text)))
    return fbs, np.asarray(index), actions


def test_a_typed_key_draws_its_own_glyph_at_the_present_caret() -> None:
    """Trained on typing at one place, the memory types the pressed key's glyph wherever the caret is
    now (it fits the caret block the glyph replaces); without ``typing`` (and the fit check) it replays at
    the trained place."""
    episodes = [_typing_episode((8, 8), "abcabc"), _typing_episode((8, 8), "cba")]
    memory = TransitionMemory.build(episodes, SCREEN)
    off = TransitionMemory.build(episodes, SCREEN, {"typing": False, "fit_tolerance": None})
    present = _terminal((32, 40), "b")  # one glyph typed here already, the caret after it
    steps = _steps(click=False)
    steps[-1].events += [{"type": "key_down", "key": "a"}, {"type": "key_up", "key": "a"}]
    change, _ = memory.recall(present, steps, SCREEN)
    assert change is not None and (change.apply(present) == _terminal((32, 40), "ba")).all()
    for key in "bc":  # each key its own glyph
        steps[-1].events[:] = [{"type": "key_down", "key": key}, {"type": "key_up", "key": key}]
        assert (memory.recall(present, steps, SCREEN)[0].apply(present) == _terminal((32, 40), "b" + key)).all()
    stored, _ = off.recall(present, steps, SCREEN)
    assert stored is not None and stored.box[0] == 8  # typed where the training episodes typed
    assert memory.recall(present, _steps(click=False), SCREEN)[0] is None  # no key, no glyph


def test_a_typed_key_takes_the_nearest_of_its_glyphs_whose_caret_is_on_the_screen() -> None:
    """The key was typed in a terminal (a caret block) on a screen like the present one and in an
    editor (a caret line) under a status bar: typing in an editor now, the nearest glyph's "before"
    (the block) fits nowhere and it lands where it was stored; with ``typing_candidates`` the
    editor's glyph, the next nearest, fits the caret line and is drawn there."""
    episodes = [_typing_episode((8, 8), "abcabc"), _typing_episode((8, 8), "cba", thin=True, band=True)]
    nearest = TransitionMemory.build(episodes, SCREEN)
    first_fit = TransitionMemory(nearest.arrays, {**nearest.config, "typing_candidates": 8})
    present = _terminal((24, 40), "b", thin=True)
    steps = _steps(click=False)
    steps[-1].events += [{"type": "key_down", "key": "a"}, {"type": "key_up", "key": "a"}]
    assert nearest.recall(present, steps, SCREEN)[0].box[0] == 8  # the terminal's glyph, at its place
    change, _ = first_fit.recall(present, steps, SCREEN)
    assert change is not None and (change.apply(present) == _terminal((24, 40), "ba", thin=True)).all()


def _quiet_keys(fb: np.ndarray, text: str) -> tuple[np.ndarray, np.ndarray, list[FrameActions]]:
    """Keys of ``text`` pressed on screen ``fb`` (one step each, two quiet steps between) that change nothing."""
    actions = []
    for f in range(3 * len(text)):
        key = text[f // 3]
        events = [{"type": "key_down", "key": key}, {"type": "key_up", "key": key}] if f % 3 == 0 else []
        actions.append(FrameActions(f, f / 15, (100, 80), events))
    return fb[None], np.zeros(len(actions), np.int64), actions


def _grey_with_terminal(typed: str | None) -> np.ndarray:
    """A grey screen (a desktop no training episode typed on) with, unless ``typed`` is None, a small
    terminal whose caret follows ``typed`` at (24, 40)."""
    fb = np.full((H, W, 3), 128, np.uint8)
    if typed is not None:
        fb[20:36, 32:60] = _terminal((24, 40), typed)[20:36, 32:60]
    return fb


def _key_window_episode(late: int = 0) -> tuple[np.ndarray, np.ndarray, list[FrameActions]]:
    """:func:`_episode` with the key ``a`` for each click: a window (over 16 px a side) that toggles at
    the key's press step as the memory keys it (``late`` 1: the step after)."""
    fbs, index, actions = _episode(np.random.default_rng(3))
    key = [{"type": "key_down", "key": "a"}, {"type": "key_up", "key": "a"}]
    index = np.concatenate([index[:1]] * late + [index[:len(index) - late]])
    return fbs, index, [FrameActions(a.frame, a.t, a.pointer, key if any(e["type"] == "down" for e in a.events)
                                     else []) for a in actions]


def test_a_key_types_where_a_caret_shows_though_the_nearest_screen_typed_nothing() -> None:
    """Keys pressed on a grey desktop changed nothing; typed into a terminal they drew glyphs. A small
    terminal over the grey desktop is nearest the desktop (the nearest says "nothing"): with
    ``typing_caret`` the key's glyph whose caret fits is drawn there; with no caret, still nothing."""
    episodes = [_typing_episode((8, 8), "abcabc"), _quiet_keys(np.full((H, W, 3), 128, np.uint8), "abcabc")]
    nearest = TransitionMemory.build(episodes, SCREEN, {"typing_candidates": 8})
    caret = TransitionMemory(nearest.arrays, {**nearest.config, "typing_caret": True})
    present = _grey_with_terminal("b")
    steps = _steps(click=False)
    steps[-1].events += [{"type": "key_down", "key": "a"}, {"type": "key_up", "key": "a"}]
    assert nearest.recall(present, steps, SCREEN)[0] is None
    change, _ = caret.recall(present, steps, SCREEN)
    assert change is not None and (change.apply(present) == _grey_with_terminal("ba")).all()
    bare = _grey_with_terminal(None)
    assert caret.recall(bare, steps, SCREEN)[0] is None  # no caret anywhere: the nearest decides
    later = _steps(click=False)  # the key a step old: not its press step, the nearest decides
    later[-2].events += [{"type": "key_down", "key": "a"}, {"type": "key_up", "key": "a"}]
    assert caret.recall(present, later, SCREEN)[0] is None


def test_a_key_types_at_a_caret_first_though_the_nearest_opened_a_window() -> None:
    """On a screen like the present one the key opened a window; typed into a terminal it drew glyphs.
    With a terminal's caret on the screen now, ``caret_first`` types the glyph there (a solid caret
    shows where the focus is); ``typing_caret`` alone asks the caret only where the nearest says nothing."""
    episodes = [_typing_episode((8, 8), "abcabc"), _key_window_episode()]
    second = TransitionMemory.build(episodes, SCREEN, {"typing_candidates": 8, "typing_caret": True})
    first = TransitionMemory(second.arrays, {**second.config, "caret_first": True})
    present = _key_window_episode()[0][0].copy()
    present[32:44, 4:28] = _terminal((34, 8), "b")[32:44, 4:28]
    steps = _steps(click=False)
    steps[-1].events += [{"type": "key_down", "key": "a"}, {"type": "key_up", "key": "a"}]
    window, _ = second.recall(present, steps, SCREEN)
    assert window is not None and window.box[1] - window.box[0] > 16  # the window
    glyph, _ = first.recall(present, steps, SCREEN)
    typed = present.copy()
    typed[32:44, 4:28] = _terminal((34, 8), "ba")[32:44, 4:28]
    assert glyph is not None and (glyph.apply(present) == typed).all()


def test_a_glyph_whose_caret_blinked_off_is_typed_after_its_line_s_text() -> None:
    """An editor (a light page, a dark caret line), no caret showing after "bc" (it blinked off): no
    stored glyph's "before" fits, so the glyph went where training typed it, mid-line, or with
    ``loose_rms`` onto anything dark and thin. With ``blank_caret`` it goes to the blank place nearest
    where training typed it, then left along the line to a pixel clear of the last glyph: "bca". A
    glyph whose "before" shows no caret, or a terminal's block on a dark page (it does not blink: a
    replay lost it), is not moved so."""
    def editor(caret: tuple[int, int], typed: str) -> np.ndarray:
        return 255 - _terminal(caret, typed, thin=True)

    fbs, index, actions = _typing_episode((24, 28), "abcabc", thin=True)
    plain = TransitionMemory.build([(255 - fbs, index, actions)], SCREEN, {"typing_candidates": 8})
    blank = TransitionMemory(plain.arrays, {**plain.config, "blank_caret": 8})
    present = editor((24, 4), "bc")
    present[24:32, 12] = 255  # the caret, blinked off
    steps = _steps(click=False)
    steps[-1].events += [{"type": "key_down", "key": "a"}, {"type": "key_up", "key": "a"}]
    assert plain.recall(present, steps, SCREEN)[0].box[2] == 28  # where training typed it
    change, _ = blank.recall(present, steps, SCREEN)
    assert change is not None and (change.apply(present) == editor((24, 4), "bca")).all()
    empty = np.full((H, W, 3), 255, np.uint8)  # an empty document: the line's start
    change, _ = blank.recall(empty, steps, SCREEN)
    assert change is not None and change.box[:3] == (24, 32, 0)
    cid = int(blank.change_of[blank._key_changes("a")[0]])
    flat = blank.arrays["befores"].copy()  # the same glyph, its "before" with no caret in it
    b0, b1 = blank.arrays["before_offsets"][cid], blank.arrays["before_offsets"][cid + 1]
    flat[b0:b1] = 255
    no_caret = TransitionMemory({**blank.arrays, "befores": flat}, blank.config)
    assert no_caret._blanked(cid, present, 12.0) is None
    terminal = TransitionMemory.build([_typing_episode((24, 28), "abcabc", thin=True)], SCREEN,
                                      {"typing_candidates": 8, "blank_caret": 8})
    dark = _terminal((24, 4), "bc", thin=True)
    dark[24:32, 12] = 0  # its caret gone
    assert terminal.recall(dark, steps, SCREEN)[0].box[2] == 28  # not moved: where training typed it


def test_a_glyph_is_typed_where_its_caret_fits_loosely_when_it_fits_nowhere_closely() -> None:
    """A caret resampled at another pixel phase is 20-30 levels from every stored "before": with
    ``loose_rms`` the glyph goes to the caret within that, not to where it was stored."""
    episodes = [_typing_episode((8, 8), "abcabc"), _typing_episode((8, 8), "cba")]
    strict = TransitionMemory.build(episodes, SCREEN, {"typing_candidates": 8})
    loose = TransitionMemory(strict.arrays, {**strict.config, "loose_rms": 30.0})
    present = _terminal((32, 40), "b")
    present[32:40, 44:48] = 225  # the caret block, dimmer: RMS 21 over the glyph's 8x8 "before"
    steps = _steps(click=False)
    steps[-1].events += [{"type": "key_down", "key": "a"}, {"type": "key_up", "key": "a"}]
    assert strict.recall(present, steps, SCREEN)[0].box[0] == 8  # fits nowhere: where it was stored
    change, _ = loose.recall(present, steps, SCREEN)
    assert change is not None and change.box == (32, 40, 44, 52)


def test_the_typing_candidates_are_distinct_changes_and_of_the_nearest_s_kind() -> None:
    """One glyph typed three times on the same line is one stored change: with two candidates the
    second is the next *distinct* change (the editor's, whose caret line fits). And with
    ``typing_kind`` a key whose nearest transition drew a glyph replays only glyphs, never the larger
    change the same key made on another screen."""
    block = [_typing_episode((8, 8), "a") for _ in range(3)]
    editor = _typing_episode((8, 8), "a", thin=True, band=True)
    memory = TransitionMemory.build([*block, editor], SCREEN, {"typing_candidates": 2})
    present = _terminal((24, 40), "", thin=True)
    steps = _steps(click=False)
    steps[-1].events += [{"type": "key_down", "key": "a"}, {"type": "key_up", "key": "a"}]
    change, _ = memory.recall(present, steps, SCREEN)
    assert change is not None and (change.apply(present) == _terminal((24, 40), "a", thin=True)).all()
    # the same key opened a window on the desktop (a change over 16 px a side)
    windowed = [_typing_episode((8, 8), "abcabc"), _key_window_episode()]
    any_kind = TransitionMemory.build(windowed, SCREEN)
    same_kind = TransitionMemory(any_kind.arrays, {**any_kind.config, "typing_kind": True})
    glyph = int(np.flatnonzero(any_kind._changes & any_kind._small(np.arange(len(any_kind))))[0])
    assert not any_kind._small(any_kind._typing(steps, glyph)).all()  # the window among the key's changes
    assert same_kind._small(same_kind._typing(steps, glyph)).all()


def test_a_key_typed_early_draws_at_its_press_step_what_training_drew_a_step_later() -> None:
    """Trained where each glyph shows the step after its press: pressed one key per frame, a glyph
    left for the step after is never drawn (the next key is the latest by then). With ``typing_early``
    the press step draws it; with ``typing_once`` too, the step after draws nothing more."""
    episodes = [_typing_episode((8, 8), "abcabc", late=1), _typing_episode((8, 8), "cba", late=1)]
    late = TransitionMemory.build(episodes, SCREEN)
    early = TransitionMemory(late.arrays, {**late.config, "typing_early": True, "typing_once": True})
    present = _terminal((32, 40), "a")
    pressed = _steps(click=False)
    pressed[-1].events += [{"type": "key_down", "key": "b"}, {"type": "key_up", "key": "b"}]
    assert late.recall(present, pressed, SCREEN)[0] is None  # the press step: nothing yet
    change, _ = early.recall(present, pressed, SCREEN)
    assert change is not None and (change.apply(present) == _terminal((32, 40), "ab")).all()
    after = [*pressed[1:], FrameActions(8, 8 / 15, (60, 40))]
    assert early.recall(change.apply(present), after, SCREEN, previous=(present, pressed))[0] is None
    assert early.recall(present, _steps(click=False), SCREEN)[0] is None  # no key, no glyph
    # what a key does a step late and is not a glyph (a window opening) is not drawn early, nor its glyph
    window = TransitionMemory.build([_key_window_episode(late=1), _typing_episode((8, 8), "abcabc")], SCREEN)
    closed = _key_window_episode()[0][0]
    pressed = _steps(click=False)
    pressed[-1].events += [{"type": "key_down", "key": "a"}, {"type": "key_up", "key": "a"}]
    assert window.recall(closed, pressed[1:] + [FrameActions(8, 8 / 15, (60, 40))], SCREEN)[0] is not None
    assert TransitionMemory(window.arrays, {**window.config, "typing_early": True}).recall(
        closed, pressed, SCREEN)[0] is None


def test_a_typed_key_goes_to_the_live_caret_below_one_left_behind() -> None:
    """A replayed Return can leave the old caret block on the line above the live one: the glyph's
    "before" fits both; by default it goes to the one nearest where it was stored (the stale one, up
    the screen), with ``lowest_caret`` to the lowest, where text goes on."""
    episodes = [_typing_episode((8, 8), "abcabc"), _typing_episode((8, 8), "cba")]
    nearest = TransitionMemory.build(episodes, SCREEN)
    lowest = TransitionMemory(nearest.arrays, {**nearest.config, "lowest_caret": True})
    present = _terminal((24, 40), "b")
    present[8:16, 20:24] = 255  # a caret block left behind on an upper line
    steps = _steps(click=False)
    steps[-1].events += [{"type": "key_down", "key": "a"}, {"type": "key_up", "key": "a"}]
    assert nearest.recall(present, steps, SCREEN)[0].box[0] == 8
    live = present.copy()
    live[24:32, 40:52] = _terminal((24, 40), "ba")[24:32, 40:52]
    assert (lowest.recall(present, steps, SCREEN)[0].apply(present) == live).all()


def test_a_key_draws_its_glyph_once_when_the_step_of_its_press_drew_it() -> None:
    """Trained where each glyph shows one step after its press, a rollout whose press step already drew
    the glyph (in training it races the redraw: either step) draws it again the step after, "bb";
    with ``typing_once`` that step changes nothing, and where the press step drew nothing it still
    draws the glyph there."""
    episodes = [_typing_episode((8, 8), "abcabc", late=1), _typing_episode((8, 8), "cba", late=1)]
    twice = TransitionMemory.build(episodes, SCREEN)
    once = TransitionMemory(twice.arrays, {**twice.config, "typing_once": True})
    pressed = _steps(click=False)[1:]  # the window one step before: the key pressed in its last step
    pressed[-1].events += [{"type": "key_down", "key": "b"}, {"type": "key_up", "key": "b"}]
    after = [*pressed[1:], FrameActions(8, 8 / 15, (60, 40))]  # the step after the press
    drew = (_terminal((32, 40), "a"), pressed)  # the press step went from "a" to "ab"
    change, _ = twice.recall(_terminal((32, 40), "ab"), after, SCREEN, previous=drew)
    assert change is not None and (change.apply(_terminal((32, 40), "ab")) == _terminal((32, 40), "abb")).all()
    assert once.recall(_terminal((32, 40), "ab"), after, SCREEN, previous=drew)[0] is None
    waited = (_terminal((32, 40), "a"), pressed)  # the press step changed nothing: the glyph is due now
    change, _ = once.recall(_terminal((32, 40), "a"), after, SCREEN, previous=waited)
    assert change is not None and (change.apply(_terminal((32, 40), "a")) == _terminal((32, 40), "ab")).all()


def _menu(top: int, opened: str = "") -> np.ndarray:
    """A grey 48x64 desktop with a two-item menu whose top is at row ``top`` (cols 16-40: item A white,
    the 8 rows below it item B black) and, when ``opened`` ("A"/"B"), the window that item opens
    (rows 36-46: red for A, blue for B)."""
    fb = np.full((H, W, 3), 90, np.uint8)
    fb[top:top + 8, 16:40], fb[top + 8:top + 16, 16:40] = 255, 0
    if opened:
        fb[36:46, 2:62] = (200, 30, 30) if opened == "A" else (30, 30, 200)
    return fb


def _menu_episode(top: int) -> tuple[np.ndarray, np.ndarray, list[FrameActions]]:
    """Click item A (the window opens one step later), close it, click item B, close it."""
    fbs = np.stack([_menu(top), _menu(top, "A"), _menu(top, "B")])
    index, actions = [], []
    plan = {1: ("A", 1), 5: (None, 0), 9: ("B", 2), 13: (None, 0)}  # step -> (item clicked, frame after)
    shown, pointer = 0, (120, 90)
    for f in range(16):
        index.append(shown)
        item, after = plan.get(f, (None, shown))
        if item:  # the pointer stays on the item until the next record (a click lands where it rests)
            pointer = (56, 2 * (top + (4 if item == "A" else 12)))  # screen coordinates are twice the frame's
        elif f - 1 not in plan:
            pointer = (120, 90)
        events = [{"type": "down", "button": 1}, {"type": "up", "button": 1}] if f in plan else []
        actions.append(FrameActions(f, f / 15, pointer, events))
        shown = after
    return fbs, np.asarray(index), actions


def test_what_is_under_the_click_chooses_the_menu_item_wherever_the_menu_is() -> None:
    """Trained with the menu at row 12, the memory sees the menu 8 rows higher: a click on item B there
    lands where item A was in training. By position alone (``patch_weight`` 0) it opens A's window;
    comparing what is under the press, B's."""
    episodes = [_menu_episode(12) for _ in range(3)]
    present = _menu(4)
    steps = _steps(click=True, pointer=(56, 2 * (4 + 12)))  # item B's middle now, item A's in training
    by_place = TransitionMemory.build(episodes, SCREEN, {"patch_weight": 0.0})
    by_item = TransitionMemory.build(episodes, SCREEN)  # the default weight, 40
    assert (by_place.recall(present, steps, SCREEN)[0].apply(present)[40, 30] == (200, 30, 30)).all()
    assert (by_item.recall(present, steps, SCREEN)[0].apply(present)[40, 30] == (30, 30, 200)).all()
    off = TransitionMemory(by_item.arrays, {"patch_weight": 0.0})  # the same arrays, not compared
    assert (off.recall(present, steps, SCREEN)[0].apply(present)[40, 30] == (200, 30, 30)).all()


def _closing_menu(top: int, state: str) -> np.ndarray:
    """``_menu(top)`` while ``state`` is "menu"; else the bare desktop it closes to ("bare") or with the
    window an item opened ("A"/"B")."""
    if state == "menu":
        return _menu(top)
    fb = np.full((H, W, 3), 90, np.uint8)
    if state != "bare":
        fb[36:46, 2:62] = (200, 30, 30) if state == "A" else (30, 30, 200)
    return fb


def test_a_click_that_opens_its_window_after_the_menu_closed_is_known_by_what_it_clicked() -> None:
    """An item's window opens steps after its click, when the menu has closed and the screen under the
    press is the bare desktop that any click there shows. Trained on item A clicked in one episode and
    item B in another (menu at row 12), the present menu 8 rows higher and a click on B where A was:
    three steps later the present patch under the press is the same grey as both stored ones, and
    position picks A's window; with what was under it at the press compared too (``press_patch``), B's."""
    episodes = []
    for item in "AB":
        fbs = np.stack([_closing_menu(12, s) for s in ("menu", "bare", item)])
        at = (56, 2 * (12 + (4 if item == "A" else 12)))  # the item's middle, screen px
        actions = [FrameActions(f, f / 15, at if f >= 3 else (120, 90),
                                [{"type": "down", "button": 1}, {"type": "up", "button": 1}] if f == 3 else [])
                   for f in range(10)]
        episodes.append((fbs, np.asarray([0, 0, 0, 0, 1, 1, 2, 2, 2, 2]), actions))  # closes at 4, opens at 6
    present = TransitionMemory.build(episodes, SCREEN)
    pressed = TransitionMemory(present.arrays, {**present.config, "press_patch": 40.0})
    steps = _steps(click=False, pointer=(56, 2 * (4 + 12)))  # item B's middle now, A's in training
    steps[4].events += [{"type": "down", "button": 1}, {"type": "up", "button": 1}]  # three steps ago
    bare = _closing_menu(4, "bare")
    past = lambda k: _closing_menu(4, "menu") if k >= 3 else bare  # noqa: E731  the menu until it closed
    for memory, window in ((present, "A"), (pressed, "B")):
        change, _ = memory.recall(bare, steps, SCREEN, past=past)
        assert change is not None and (change.apply(bare) == _closing_menu(4, window)).all()
    older = {k: v for k, v in present.arrays.items() if k != "press_patches"}  # a memory saved before them
    change, _ = TransitionMemory(older, pressed.config).recall(bare, steps, SCREEN, past=past)
    assert (change.apply(bare) == _closing_menu(4, "A")).all()  # the present patches, as it was saved for


def _hover_menu(top: int, left: int, lit: str = "") -> np.ndarray:
    """A grey 48x64 desktop with a three-item menu at (``top``, ``left``): items A, B, C of 6x24 px,
    white with a black stroke at a column of their own; ``lit`` the one highlighted (blue)."""
    fb = np.full((H, W, 3), 90, np.uint8)
    for k, name in enumerate("ABC"):
        y = top + 6 * k
        fb[y:y + 6, left:left + 24] = (40, 90, 220) if name == lit else (255, 255, 255)
        fb[y + 2:y + 4, left + 4 + 6 * k:left + 8 + 6 * k] = 0
    return fb


def test_a_highlight_follows_its_item_to_where_the_menu_is_now() -> None:
    """Trained on the pointer entering item B of a menu at (10, 10), the memory sees the menu 6 rows
    lower and 4 columns right. Where training drew B's highlight, the present screen shows A's
    stroke: with ``follow`` the highlight goes where the present screen shows B as it was before it;
    with B highlighted already (its "before" nowhere), the thumbnail fit check decides as without."""
    fbs = np.stack([_hover_menu(10, 10), _hover_menu(10, 10, "B")])
    on_b = (2 * 22, 2 * 19)  # B's middle (row 19, col 22) in screen px
    actions = [FrameActions(f, f / 15, on_b if f >= 4 else (120, 90)) for f in range(8)]
    still = TransitionMemory.build([(fbs, np.asarray([0, 0, 0, 0, 1, 1, 1, 1]), actions)], SCREEN)
    follow = TransitionMemory(still.arrays, {**still.config, "follow": 24})
    present = _hover_menu(16, 14)

    def hover(at: tuple[int, int]) -> list[FrameActions]:
        steps = [FrameActions(i, i / 15, (120, 90)) for i in range(8)]
        steps[-1] = FrameActions(7, 7 / 15, at)
        return steps

    change, _ = follow.recall(present, hover((2 * 26, 2 * 25)), SCREEN)  # B's middle now: row 25, col 26
    assert change is not None and (change.apply(present) == _hover_menu(16, 14, "B")).all()
    change, _ = still.recall(present, hover((2 * 26, 2 * 25)), SCREEN)
    assert change is None or not (change.apply(present) == _hover_menu(16, 14, "B")).all()
    lit = _hover_menu(16, 14, "B")
    moved, plain = follow.recall(lit, hover((2 * 26, 2 * 25)), SCREEN)[0], still.recall(lit, hover((2 * 26, 2 * 25)), SCREEN)[0]
    assert (moved is None and plain is None) or (moved.box == plain.box and (moved.apply(lit) == plain.apply(lit)).all())


def test_a_hover_lights_the_item_under_the_pointer_in_a_menu_where_training_had_none() -> None:
    """Trained on the pointer entering item B of a menu at (10, 10), the memory sees the menu at (28, 34),
    out of ``follow``'s reach: the nearest transitions change nothing there. With ``hover`` the
    pointer entering B lights B where it is now (and unlights A); entering C, or resting on B, lights
    nothing."""
    fbs = np.stack([_hover_menu(10, 10), _hover_menu(10, 10, "B")])
    on_b = (2 * 22, 2 * 19)  # B's middle (row 19, col 22) in screen px
    actions = [FrameActions(f, f / 15, on_b if f >= 4 else (120, 90)) for f in range(8)]
    plain = TransitionMemory.build([(fbs, np.asarray([0, 0, 0, 0, 1, 1, 1, 1]), actions)], SCREEN)
    hover = TransitionMemory(plain.arrays, {**plain.config, "hover": True})
    present = _hover_menu(28, 34)

    def steps(at: tuple[int, int], moved: bool = True) -> list[FrameActions]:
        window = [FrameActions(i, i / 15, at if not moved else (120, 90)) for i in range(8)]
        window[-1] = FrameActions(7, 7 / 15, at)
        return window

    b_now, c_now = (2 * 46, 2 * 37), (2 * 46, 2 * 43)  # B's and C's middles now (rows 37, 43; col 46)
    change, _ = hover.recall(present, steps(b_now), SCREEN)
    assert change is not None and (change.apply(present) == _hover_menu(28, 34, "B")).all()
    assert plain.recall(present, steps(b_now), SCREEN)[0] is None
    assert hover.recall(present, steps(c_now), SCREEN)[0] is None  # C is not the item B was before
    assert hover.recall(present, steps(b_now, moved=False), SCREEN)[0] is None
    # A lit before (by an earlier hover): B is lit and A unlit, as the frames before showed it, or without
    # them by undoing B's recolouring
    a_lit = _hover_menu(28, 34, "A")
    for past in (lambda k: present, None):
        change, _ = hover.recall(a_lit, steps(b_now), SCREEN, past=past)
        assert change is not None and (change.apply(a_lit) == _hover_menu(28, 34, "B")).all()


def _selected_field(top: int, left: int, typed: bool = False, bar: tuple[int, int, int] = (40, 90, 220)
                    ) -> np.ndarray:
    """A grey 48x64 screen with a dialog's white 10x28 px text field at (``top``, ``left``), its text
    selected (a ``bar``, blue, with a white stroke), or, ``typed``, replaced by the first key's glyph."""
    fb = np.full((H, W, 3), 90, np.uint8)
    fb[top:top + 10, left:left + 28] = 255
    if typed:
        fb[top + 2:top + 8, left + 2:left + 4] = 0
    else:
        fb[top + 2:top + 8, left + 2:left + 22] = bar
        fb[top + 4:top + 6, left + 4:left + 20] = 255
    return fb


def test_the_first_key_replaces_a_selected_field_where_the_dialog_is_now() -> None:
    """Trained on "f" typed over a selected field at (10, 10), the memory sees the dialog 10 rows
    lower and 20 columns right. The key's change (the selection replaced, 6x20 px: larger than a
    glyph) is pasted where training drew it; with ``follow_typed`` where the present screen shows the
    selection, anywhere on it; with ``typed_selection`` too, but a change over a grey bar (not a
    selection) stays where training drew it."""
    fbs = np.stack([_selected_field(10, 10), _selected_field(10, 10, typed=True)])
    key = [{"type": "key_down", "key": "f"}, {"type": "key_up", "key": "f"}]
    actions = [FrameActions(f, f / 15, (120, 90), key if f == 4 else []) for f in range(8)]
    stored = TransitionMemory.build([(fbs, np.asarray([0, 0, 0, 0, 0, 1, 1, 1]), actions)], SCREEN,
                                    {"follow": 24})  # the record of frame 4 leads into frame 5
    typed = TransitionMemory(stored.arrays, {**stored.config, "follow_typed": True})
    present = _selected_field(20, 30)
    steps = _steps(click=False, pointer=(120, 90))
    steps[-1].events += key
    change, _ = stored.recall(present, steps, SCREEN)
    assert change is not None and change.box[:3:2] == (12, 12)  # where training typed
    change, _ = typed.recall(present, steps, SCREEN)
    assert change is not None and (change.apply(present) == _selected_field(20, 30, typed=True)).all()
    # typed_selection: only a change whose "before" is selected text (a saturated bar) follows
    selection = TransitionMemory(stored.arrays, {**stored.config, "typed_selection": True})
    change, _ = selection.recall(present, steps, SCREEN)
    assert change is not None and (change.apply(present) == _selected_field(20, 30, typed=True)).all()
    grey = (130, 130, 130)  # the same change over a grey bar: a terminal's rows, a window's edge
    fbs = np.stack([_selected_field(10, 10, bar=grey), _selected_field(10, 10, typed=True)])
    plain = TransitionMemory.build([(fbs, np.asarray([0, 0, 0, 0, 0, 1, 1, 1]), actions)], SCREEN,
                                   {"follow": 24, "typed_selection": True})
    change, _ = plain.recall(_selected_field(20, 30, bar=grey), steps, SCREEN)
    assert change is not None and change.box[:3:2] == (12, 12)  # where training typed


def _context_menu(at: tuple[int, int] | None) -> np.ndarray:
    """A grey 48x64 desktop with, when ``at`` (row, col), a 12x16 px menu whose top-left corner is
    there: a white body with a black first item."""
    fb = np.full((H, W, 3), 90, np.uint8)
    if at is not None:
        y, x = at
        fb[y:y + 12, x:x + 16] = 255
        fb[y:y + 4, x:x + 16] = 0
    return fb


def test_a_context_menu_opens_where_the_present_right_click_is() -> None:
    """Trained on a right-click at one place (its menu opening at the pointer), the memory opens the
    menu at the present right-click, wherever it is; ``anchored`` off replays it at the trained place,
    and a left click's answer never moves."""
    pointer = (20, 16)  # screen px: frame (row 8, col 10)
    fbs = np.stack([_context_menu(None), _context_menu((8, 10))])
    actions = [FrameActions(f, f / 15, pointer, [{"type": "down", "button": 3}, {"type": "up", "button": 3}]
                            if f == 3 else []) for f in range(8)]
    memory = TransitionMemory.build([(fbs, np.asarray([0, 0, 0, 0, 1, 1, 1, 1]), actions)], SCREEN)
    present = _context_menu(None)
    steps = _steps(click=False, pointer=(80, 50))  # frame (row 25, col 40)
    steps[-1].events += [{"type": "down", "button": 3}, {"type": "up", "button": 3}]
    change, _ = memory.recall(present, steps, SCREEN)
    assert change is not None and (change.apply(present) == _context_menu((25, 40))).all()
    fixed = TransitionMemory(memory.arrays, {**memory.config, "anchored": False})
    assert (fixed.recall(present, steps, SCREEN)[0].apply(present) == _context_menu((8, 10))).all()
    for e in steps[-1].events:
        e["button"] = 1  # trained on a right-click only, so the same menu, but a left click's stays put
    assert (memory.recall(present, steps, SCREEN)[0].apply(present) == _context_menu((8, 10))).all()


def test_a_menu_that_opened_with_another_change_opens_alone_where_the_present_right_click_is() -> None:
    """Training's right-click also cleared a selected icon across the screen: one change, over half the
    screen and with no corner at the press, so it was replayed where it was stored (a window's rule).
    With ``popup_parts`` its menu part opens at the present right-click and the icon part stays where
    it was."""
    pointer = (80, 60)  # screen px: frame (row 30, col 40)
    selected = _context_menu(None)
    selected[2:6, 2:8] = 255  # the icon, selected
    fbs = np.stack([selected, _context_menu((30, 40))])
    actions = [FrameActions(f, f / 15, pointer, [{"type": "down", "button": 3}, {"type": "up", "button": 3}]
                            if f == 3 else []) for f in range(8)]
    whole = TransitionMemory.build([(fbs, np.asarray([0, 0, 0, 0, 1, 1, 1, 1]), actions)], SCREEN)
    parts = TransitionMemory(whole.arrays, {**whole.config, "popup_parts": True})
    present = _context_menu(None)
    steps = _steps(click=False, pointer=(40, 20))  # frame (row 10, col 20)
    steps[-1].events += [{"type": "down", "button": 3}, {"type": "up", "button": 3}]
    assert (whole.recall(present, steps, SCREEN)[0].apply(present) == _context_menu((30, 40))).all()
    change, _ = parts.recall(present, steps, SCREEN)
    assert (change.apply(present) == _context_menu((10, 20))).all()
    assert (change.apply(selected)[2:6, 2:8] == 90).all()  # the icon part, where it was: cleared
    # with follow on, the parts placed apart are not looked for as one stored picture (once a crash)
    followed = TransitionMemory(whole.arrays, {**whole.config, "popup_parts": True, "follow": 24})
    assert (followed.recall(present, steps, SCREEN)[0].apply(present) == _context_menu((10, 20))).all()


def test_a_key_closes_the_menu_open_here_though_the_nearest_screen_did_nothing() -> None:
    """Escape closed a menu at (8, 10) in one episode and did nothing over a white window in three. Now
    the menu is open 6 rows and 8 columns off: the nearest screens are the window's (the menu's black
    item is all that differs) and say "nothing". With ``shown_keys``, on a screen that far from
    training (``hover_far``, set low for these tiny frames), the key's stored change whose "before" the
    screen shows, followed to it, closes the menu here."""
    def escape_episode(before: np.ndarray, after: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[FrameActions]]:
        actions = [FrameActions(f, f / 15, (120, 90), [{"type": "key_down", "key": "Escape"},
                                                        {"type": "key_up", "key": "Escape"}] if f == 3 else [])
                   for f in range(6)]
        return np.stack([before, after]), np.asarray([0, 0, 0, 0, 1, 1]), actions

    window = _context_menu(None)
    window[14:26, 18:34] = 255  # a white window where the menu is now, without the menu's black item
    episodes = [escape_episode(_context_menu((8, 10)), _context_menu(None)),
                *(escape_episode(window, window) for _ in range(3))]
    memory = TransitionMemory.build(episodes, SCREEN, {"follow": 24, "hover_far": 0.0})
    keyed = TransitionMemory(memory.arrays, {**memory.config, "shown_keys": True})
    present = _context_menu((14, 18))
    steps = _steps(click=False, pointer=(120, 90))
    steps[-1].events += [{"type": "key_down", "key": "Escape"}, {"type": "key_up", "key": "Escape"}]
    assert memory.recall(present, steps, SCREEN)[0] is None
    change, _ = keyed.recall(present, steps, SCREEN)
    assert change is not None and (change.apply(present) == _context_menu(None)).all()
    steps[-1].events[:] = [{"type": "key_down", "key": "Tab"}, {"type": "key_up", "key": "Tab"}]
    assert keyed.recall(present, steps, SCREEN)[0] is None  # another key: none of its changes closed a menu


def _key_episode(before: np.ndarray, after: np.ndarray, keys: list[str], changed_at: int = 4) -> tuple:
    """Six records, ``keys`` pressed together in record 3 (released in reverse order), the pointer still:
    the screen ``before`` until record ``changed_at``, ``after`` from it on (an episode for
    :meth:`TransitionMemory.build`)."""
    events = [{"type": "key_down", "key": k} for k in keys] + [{"type": "key_up", "key": k} for k in keys[::-1]]
    actions = [FrameActions(f, f / 15, (120, 90), list(events) if f == 3 else []) for f in range(6)]
    return np.stack([before, after]), np.asarray([0] * changed_at + [1] * (6 - changed_at)), actions


def test_a_shortcut_recalls_what_the_same_shortcut_did_not_what_another_key_did_on_this_screen() -> None:
    """ctrl+n opened a tab (a dark bar at the top) on a plain grey screen in one episode; on the present
    screen, a window on it, three episodes pressed ``n`` alone and nothing changed. The key's few
    numbers weigh less than the window: the nearest of all is a plain ``n`` here and says "nothing".
    With ``shortcuts`` the shortcut recalls among the stored ctrl+n of its age and the tab opens; a plain
    ``n`` still recalls as before, and so does ctrl+n with a click after it."""
    grey = np.full((H, W, 3), 120, np.uint8)
    tab = grey.copy()
    tab[0:6, 0:24] = 30
    window = grey.copy()
    window[16:44, 8:56] = 255

    episodes = [_key_episode(grey, tab, ["ctrl", "n"]), *(_key_episode(window, window, ["n"]) for _ in range(3))]
    plain = TransitionMemory.build(episodes, SCREEN)
    shortcut = TransitionMemory(plain.arrays, {**plain.config, "shortcuts": 7})
    steps = _steps(click=False, pointer=(120, 90))
    steps[-1].events += [{"type": "key_down", "key": "ctrl"}, {"type": "key_down", "key": "n"},
                         {"type": "key_up", "key": "n"}, {"type": "key_up", "key": "ctrl"}]
    assert plain.recall(window, steps, SCREEN)[0] is None
    change, _ = shortcut.recall(window, steps, SCREEN)
    opened = window.copy()
    opened[0:6, 0:24] = 30
    assert change is not None and (change.apply(window) == opened).all()
    clicked = [*steps[1:], FrameActions(8, 8 / 15, (120, 90), [{"type": "down", "button": 1}, {"type": "up", "button": 1}])]
    assert plain.recall(window, clicked, SCREEN)[0] is None and shortcut.recall(window, clicked, SCREEN)[0] is None
    steps[-1].events[:] = [{"type": "key_down", "key": "n"}, {"type": "key_up", "key": "n"}]
    assert shortcut.recall(window, steps, SCREEN)[0] is None  # a plain key: none of the ctrl+n


def test_a_named_key_recalls_what_the_same_key_did_not_what_a_key_near_its_numbers_did() -> None:
    """Return opened a new line (a dark bar) on a plain grey screen in one episode; on the present
    screen, a window on it, three episodes typed ``7``, whose 3 numbers lie nearest Return's of all the
    keys, and nothing changed. The nearest of all is a ``7`` here and says "nothing"; with ``named_keys``
    Return recalls among the stored Returns of its age and the line opens. ``7`` recalls as before."""
    grey = np.full((H, W, 3), 120, np.uint8)
    line = grey.copy()
    line[4:10, 0:40] = 30
    window = grey.copy()
    window[16:44, 8:56] = 255

    episodes = [_key_episode(grey, line, ["Return"]), *(_key_episode(window, window, ["7"]) for _ in range(3))]
    plain = TransitionMemory.build(episodes, SCREEN)
    named = TransitionMemory(plain.arrays, {**plain.config, "named_keys": 3})
    steps = _steps(click=False, pointer=(120, 90))
    steps[-1].events += [{"type": "key_down", "key": "Return"}, {"type": "key_up", "key": "Return"}]
    assert plain.recall(window, steps, SCREEN)[0] is None
    change, _ = named.recall(window, steps, SCREEN)
    opened = window.copy()
    opened[4:10, 0:40] = 30
    assert change is not None and (change.apply(window) == opened).all()
    steps[-1].events[:] = [{"type": "key_down", "key": "7"}, {"type": "key_up", "key": "7"}]
    assert named.recall(window, steps, SCREEN)[0] is None


def test_a_word_s_first_key_does_what_the_first_keys_on_this_screen_did_whichever_letter_it_is() -> None:
    """On a file manager's window, the first key of a word opens a type-ahead field (a dark box at its
    bottom right): five episodes typed five letters there and each opened it; two typed ``q`` and
    nothing changed (the view had no focus). The present key is ``q``: its own transitions are the
    nearest and say "nothing". With ``letter_kinds`` the first keys on this screen vote, five of the
    seven opened the field, and it opens; not where the screen shows the field already (the change's
    "before" is not there), and the word's second key is not voted on."""
    window = np.full((H, W, 3), 120, np.uint8)
    window[8:46, 4:62] = 240
    field = window.copy()
    field[36:44, 40:60] = 40

    episodes = [*(_key_episode(window, field, [k]) for k in "abcde"),
                *(_key_episode(window, window, ["q"]) for _ in range(2))]
    plain = TransitionMemory.build(episodes, SCREEN)
    voted = TransitionMemory(plain.arrays, {**plain.config, "letter_kinds": True})
    steps = _steps(click=False, pointer=(120, 90))
    steps[-1].events += [{"type": "key_down", "key": "q"}, {"type": "key_up", "key": "q"}]
    assert plain.recall(window, steps, SCREEN)[0] is None
    change, _ = voted.recall(window, steps, SCREEN)
    assert change is not None and (change.apply(window) == field).all()
    assert voted.recall(field, steps, SCREEN)[0] is None  # the field shown already: its "before" is not
    second = [*steps[1:-1], FrameActions(7, 7 / 15, (120, 90), [{"type": "key_down", "key": "x"},
                                                                 {"type": "key_up", "key": "x"}]), steps[-1]]
    second[-1] = FrameActions(8, 8 / 15, (120, 90), list(steps[-1].events))
    assert voted.recall(window, second, SCREEN)[0] is None


def test_a_change_that_draws_the_block_caret_elsewhere_erases_the_one_shown() -> None:
    """A terminal page (black) with a block caret at the end of one row; a replayed change draws the next
    row's prompt and its block caret, its mask (from another command's line) missing the present caret's
    cell. ``_caret_moved`` erases that caret to the page's colour; a change that draws no caret, or the
    caret where it is, is left alone; a light page's solid block (a button) is no caret."""
    page = np.zeros((192, 256, 3), np.uint8)
    page[40:49, 60:62] = 200  # a glyph's stroke: thin
    page[40:49, 80:84] = 182  # the block caret
    mask = np.zeros((30, 150), bool)
    mask[12:21, 0:40] = True  # the new line: a glyph stroke and a caret
    colours = np.zeros((30, 150, 3), np.uint8)
    colours[12:21, 10:12] = 200
    colours[12:21, 30:34] = 182
    change = Change((39, 69, 1, 151), mask, colours[mask])
    moved = _caret_moved(change, page).apply(page)
    assert moved[40:49, 79:85].max() == 0 and (moved[51:60, 31:35] == 182).all() and (moved[40:49, 60:62] == 200).all()
    quiet = colours.copy()
    quiet[12:21, 30:34] = 0
    unchanged = Change((39, 69, 1, 151), mask, quiet[mask])
    assert _caret_moved(unchanged, page) is unchanged
    light = np.full((192, 256, 3), 230, np.uint8)
    light[40:49, 80:84] = 255
    assert _caret_moved(change, light) is change


def test_a_return_s_new_line_goes_below_the_present_caret_s_row() -> None:
    """A terminal page with its block caret on row 60; a Return's change stored from a command on row 40
    (its box's top: the caret cell it clears; below it an output line and the new prompt's caret). Moved
    to the present caret's row, by 20; not moved where the screen shows two carets, or where the change
    draws no caret (its box's top is then no caret's row). At the page's last row the page scrolls up by
    the rows the new lines overrun it and they come that much higher; none where taller than the page."""
    page = np.zeros((192, 256, 3), np.uint8)
    page[61:70, 80:84] = 182
    mask = np.zeros((30, 150), bool)
    mask[1:10, 20:24] = True   # the stored command's caret cell, cleared
    mask[20:29, 0:40] = True   # the new prompt and its caret
    colours = np.zeros((30, 150, 3), np.uint8)
    colours[20:29, 30:34] = 182
    change = Change((40, 70, 1, 151), mask, colours[mask])
    assert _caret_row(change, page).box == (60, 90, 1, 151)
    two = page.copy()
    two[101:110, 30:34] = 182
    assert _caret_row(change, two) is change
    quiet = colours.copy()
    quiet[20:29, 30:34] = 0
    assert _caret_row(Change((40, 70, 1, 151), mask, quiet[mask]), page).box == (40, 70, 1, 151)
    low = np.zeros_like(page)  # the caret on the page's last text row
    low[0:12] = 230           # a light menu bar above the page
    low[41:50, 2:4] = 200     # an earlier command
    low[182:191, 80:84] = 182
    scrolled = _caret_row(change, low)
    assert scrolled is not None and scrolled.box == (12, 192, 1, 151)  # the page, over the change's columns
    out = scrolled.apply(low)
    over = 181 + 30 - 192     # rows the new lines overrun the page by: the page moves up by them
    assert (out[41 - over:50 - over, 2:4] == 200).all() and (out[0:12] == 230).all()
    assert (out[181 - over + 20:181 - over + 29, 31:35] == 182).all()  # the new prompt's caret
    carets = _caret_boxes(out)
    assert len(carets) == 1  # the old one scrolled away erased
    tall_mask = np.zeros((200, 150), bool)
    tall_mask[190:199, 30:34] = True  # a prompt's caret 190 rows below the cleared one
    tall = Change((0, 200, 1, 151), tall_mask, np.full((36, 3), 182, np.uint8))
    assert _caret_row(tall, low) is None  # taller than the page


def test_a_nothing_after_a_change_this_rollout_did_not_make_does_not_stop_the_search() -> None:
    """Return drew a new line (a few pixels) at its press step in one episode and a step later in another,
    whose screen differs more elsewhere. A step after the press, where this rollout drew nothing since it,
    the nearest is the first episode's "nothing" (its line already drawn); with ``missed_change`` the
    second's line comes."""
    grey = np.full((H, W, 3), 120, np.uint8)
    other = grey.copy()
    other[32:48, 40:56] = 180

    def line_on(fb: np.ndarray) -> np.ndarray:
        out = fb.copy()
        out[4:8, 0:8] = 30
        return out

    # the line drawn at the press step (record 4) in the first, a step later in the second
    episodes = [_key_episode(grey, line_on(grey), ["Return"]), _key_episode(other, line_on(other), ["Return"], 5)]
    plain = TransitionMemory.build(episodes, SCREEN)
    missed = TransitionMemory(plain.arrays, {**plain.config, "missed_change": True})
    steps = _steps(click=False, pointer=(120, 90))
    steps[-1].events += [{"type": "key_down", "key": "Return"}, {"type": "key_up", "key": "Return"}]
    later = [*steps[1:], FrameActions(8, 8 / 15, (120, 90))]
    unchanged = lambda k: grey  # noqa: E731  (the rollout's framebuffers k steps back)
    assert plain.recall(grey, later, SCREEN, previous=(grey, steps), past=unchanged)[0] is None
    change, _ = missed.recall(grey, later, SCREEN, previous=(grey, steps), past=unchanged)
    assert change is not None and (change.apply(grey) == line_on(grey)).all()
    drawn = grey.copy()
    drawn[0, 0] = 0  # the rollout drew something since the key: the "nothing" counts as before
    assert missed.recall(drawn, later, SCREEN, previous=(grey, steps), past=unchanged)[0] is None


def test_a_nothing_on_a_screen_without_the_selection_does_not_stop_the_click_that_clears_it() -> None:
    """A click on the empty desktop cleared the selected icon in one episode, far from the present
    pointer; two episodes clicked right beside it with the icon not selected, and nothing changed. The
    nearest transitions are those "nothing"s. With ``nothing_evidence`` they do not speak about the
    clearing (their screens did not show a selected icon), so the click that clears it is replayed; on a
    screen whose icon is not selected, the "nothing" stands."""
    desk = np.full((H, W, 3), (60, 80, 110), np.uint8)
    plain, selected = desk.copy(), desk.copy()
    plain[4:12, 4:12] = (100, 150, 220)
    selected[4:12, 4:12] = (30, 60, 160)

    def click_episode(before: np.ndarray, after: np.ndarray, at: tuple[int, int]) -> tuple:
        actions = [FrameActions(f, f / 15, at, [{"type": "down", "button": 1}, {"type": "up", "button": 1}]
                                if f == 3 else []) for f in range(6)]
        return np.stack([before, after]), np.asarray([0, 0, 0, 0, 1, 1]), actions

    episodes = [click_episode(selected, plain, (100, 70)), *(click_episode(plain, plain, (60, 40)) for _ in range(2))]
    nearest = TransitionMemory.build(episodes, SCREEN)
    informed = TransitionMemory(nearest.arrays, {**nearest.config, "nothing_evidence": True})
    steps = _steps(click=True, pointer=(62, 40))
    assert nearest.recall(selected, steps, SCREEN)[0] is None
    change, _ = informed.recall(selected, steps, SCREEN)
    assert change is not None and (change.apply(selected) == plain).all()
    assert informed.recall(plain, steps, SCREEN)[0] is None


@pytest.mark.parametrize("event", ["press", "key"])
def test_a_plan_replays_what_the_nearest_input_as_it_came_did_steps_later(event: str) -> None:
    """A click (or Return) on a plain icon selected it a step later and opened its window two steps after
    that (one episode); two episodes clicked the icon already selected, and nothing happened. Three steps
    after the present click the rollout has not drawn the selection (its screen is still the press-time
    one): the step's nearest transitions are both kinds' third steps after their presses, equally far (all
    show the icon selected), and the "nothing"s, stored first, win. Compared as it came, the press finds
    the click on the plain icon, whose episode opened the window then (``press_plan``, ``key_plan``);
    among its three nearest presses only that one changed the screen then, so with ``plan_votes`` 3 it
    stays shut; a newer input is not the press's to answer, nor a window training opened after one."""
    desk = np.full((H, W, 3), (60, 80, 110), np.uint8)
    plain, selected = desk.copy(), desk.copy()
    plain[4:12, 4:12] = (100, 150, 220)
    selected[4:12, 4:12] = (30, 60, 160)
    opened = selected.copy()
    opened[20:44, 8:56] = (230, 230, 230)
    at = (16, 16)  # the icon's middle, screen px
    press = [{"type": "down", "button": 1}, {"type": "up", "button": 1}] if event == "press" else \
        meta_to_events({"type": "key", "keys": ["Return"]})
    newer = meta_to_events({"type": "key", "keys": ["x"]}) if event == "press" else [
        {"type": "down", "button": 1}, {"type": "up", "button": 1}]

    def click_episode(frames: list[np.ndarray], index: list[int]) -> tuple:
        actions = [FrameActions(f, f / 15, at, list(press) if f == 3 else []) for f in range(len(index))]
        return np.stack(frames), np.asarray(index), actions

    episodes = [click_episode([selected], [0] * 9) for _ in range(2)]
    episodes.append(click_episode([plain, selected, opened], [0, 0, 0, 0, 0, 1, 1, 2, 2]))  # ages 1 and 3
    memory = TransitionMemory.build(episodes, SCREEN)
    steps = _steps(click=False, pointer=at)
    steps[4].events += press  # three steps ago
    past = lambda k: plain  # noqa: E731  the rollout drew nothing since the press
    setting = f"{event}_plan"
    assert memory.recall(plain, steps, SCREEN, past=past)[0] is None
    for plan in ("first", "nothing"):
        planned = TransitionMemory(memory.arrays, {**memory.config, setting: plan})
        change, _ = planned.recall(plain, steps, SCREEN, past=past)
        assert change is not None and (change.apply(plain)[20:44, 8:56] == 230).all()
        assert planned.recall(plain, steps, SCREEN)[0] is None  # the press-time screen not kept: no plan
    voted = TransitionMemory(memory.arrays, {**memory.config, setting: "first", "plan_votes": 3})
    assert voted.recall(plain, steps, SCREEN, past=past)[0] is None
    later = [FrameActions(s.frame, s.t, s.pointer, list(s.events)) for s in steps]
    later[6].events += newer
    planned = TransitionMemory(memory.arrays, {**memory.config, setting: "first"})
    assert planned.recall(plain, later, SCREEN, past=past)[0] is None
    with pytest.raises(NCError, match=f"{setting} is .always."):
        TransitionMemory(memory.arrays, {**memory.config, setting: "always"}).recall(plain, steps, SCREEN)
    # where training's window came after a newer input of the other kind, it was that input's to draw
    fbs, index, actions = episodes[-1]
    actions = [FrameActions(a.frame, a.t, a.pointer, a.events + (newer if a.frame == 5 else [])) for a in actions]
    other = TransitionMemory.build([*episodes[:-1], (fbs, index, actions)], SCREEN, {setting: "first"})
    assert other.recall(plain, steps, SCREEN, past=past)[0] is None


def test_a_right_click_where_training_never_right_clicked_opens_a_menu_with_right_clicks() -> None:
    """Training right-clicked only on the grey desktop; on another screen (a window toggled by left
    clicks) the nearest transitions to a right-click are those left clicks, and the menu never
    opens. With ``right_clicks`` a right-click at most a step old recalls among the stored
    right-clicks of its age: the menu opens at the pointer (anchored), over the other screen."""
    pointer = (20, 16)
    fbs = np.stack([_context_menu(None), _context_menu((8, 10))])
    actions = [FrameActions(f, f / 15, pointer, [{"type": "down", "button": 3}, {"type": "up", "button": 3}]
                            if f == 3 else []) for f in range(8)]
    rng = np.random.default_rng(4)
    episodes = [(fbs, np.asarray([0, 0, 0, 0, 1, 1, 1, 1]), actions), *(_episode(rng) for _ in range(6))]
    nearest = TransitionMemory.build(episodes, SCREEN)
    right = TransitionMemory(nearest.arrays, {**nearest.config, "right_clicks": True})
    present = episodes[1][0][0]  # the other screen, its window closed
    steps = _steps(click=False, pointer=(80, 50))  # frame (row 25, col 40)
    steps[-1].events += [{"type": "down", "button": 3}, {"type": "up", "button": 3}]
    change, _ = nearest.recall(present, steps, SCREEN)
    assert change is None or change.box[:3:2] != (25, 40)  # no menu at the pointer
    change, _ = right.recall(present, steps, SCREEN)
    menu = present.copy()
    menu[25:37, 40:56] = _context_menu((25, 40))[25:37, 40:56]
    assert change is not None and (change.apply(present) == menu).all()
    steps[-1].events[:] = [{"type": "down", "button": 1}, {"type": "up", "button": 1}]  # a left click: as before
    left, plain = right.recall(present, steps, SCREEN)[0], nearest.recall(present, steps, SCREEN)[0]
    assert (left is None and plain is None) or (left.box == plain.box and (left.apply(present) == plain.apply(present)).all())


def test_a_context_menu_that_opened_flipped_in_training_opens_as_there_is_room_now() -> None:
    """Trained on a right-click near the bottom-right corner, where the menu opened flipped left of
    the pointer and shifted up to fit, the memory opens it with its top-left corner at a right-click
    in the open (where moving it by the offset would put it up and left of the pointer), flipped
    left only where the present one has no room to its right, and above the pointer (not shifted up to
    the bottom edge) where it has no room below but room above, below the top panel."""
    pointer = (120, 90)  # screen px: frame (row 45, col 60); the 12x16 menu ends at col 60, row 48
    fbs = np.stack([_context_menu(None), _context_menu((36, 44))])
    actions = [FrameActions(f, f / 15, pointer, [{"type": "down", "button": 3}, {"type": "up", "button": 3}]
                            if f == 3 else []) for f in range(8)]
    memory = TransitionMemory.build([(fbs, np.asarray([0, 0, 0, 0, 1, 1, 1, 1]), actions)], SCREEN)
    for at, menu in (((40, 30), (15, 20)), ((120, 20), (10, 44)), ((40, 88), (32, 20))):
        steps = _steps(click=False, pointer=at)
        steps[-1].events += [{"type": "down", "button": 3}, {"type": "up", "button": 3}]
        change, _ = memory.recall(_context_menu(None), steps, SCREEN)
        assert (change.apply(_context_menu(None)) == _context_menu(menu)).all(), at
    slid = TransitionMemory(memory.arrays, {**memory.config, "popup_flip": False})  # as memories placed it before
    assert (slid.recall(_context_menu(None), steps, SCREEN)[0].apply(_context_menu(None)) == _context_menu((36, 20))).all()


def _icon(selected: bool) -> np.ndarray:
    """A grey 48x64 desktop with an icon that is white when selected."""
    fb = np.full((H, W, 3), 90, np.uint8)
    fb[4:12, 4:12] = 255 if selected else 150
    return fb


def test_navigation_keys_vote_together_on_whether_the_screen_changes() -> None:
    """Down and Up each selected the icon once, Left once did nothing (a focus the screen does not
    show). Left again: alone its one transition says nothing happens; with ``key_kinds`` the three
    navigation presses on this screen vote, and two of three selected the icon."""
    fbs = np.stack([_icon(False), _icon(True)])
    episodes = []
    for key, works in (("Down", True), ("Up", True), ("Left", False)):
        actions = [FrameActions(f, f / 15, (100, 80), [{"type": "key_down", "key": key}, {"type": "key_up", "key": key}]
                                if f == 1 else []) for f in range(4)]
        episodes.append((fbs, np.asarray([0, 0, int(works), int(works)]), actions))
    pooled = TransitionMemory.build(episodes, SCREEN)  # the default
    alone = TransitionMemory(pooled.arrays, {**pooled.config, "key_kinds": False})
    steps = _steps(click=False)
    steps[-1].events += [{"type": "key_down", "key": "Left"}, {"type": "key_up", "key": "Left"}]
    assert alone.recall(_icon(False), steps, SCREEN)[0] is None
    change, _ = pooled.recall(_icon(False), steps, SCREEN)
    assert change is not None and (change.apply(_icon(False)) == _icon(True)).all()
    steps[-1].events[:] = [{"type": "key_down", "key": "Tab"}, {"type": "key_up", "key": "Tab"}]
    assert pooled._kind_vote(thumbnail(_icon(False)), np.zeros(len(pooled)), input_features(steps, SCREEN)) is None


def test_the_screen_where_the_click_lands_counts_more_than_the_rest() -> None:
    """Two training clicks at the same place: one on the icon while a far corner of the screen looked
    otherwise (the icon is selected), one on bare desktop while all the rest looked as now (nothing
    happens). A click on the icon now: by the whole thumbnail the second is nearer (fewer blocks
    differ), with the blocks near the click weighing more the first is, and the icon is selected."""
    icon, bare = _icon(False), _icon(False)
    icon[36:44, 40:52] = 30  # six blocks far from the click look otherwise
    bare[4:12, 4:12] = 90    # no icon under the click: four blocks differ there
    after = icon.copy()
    after[4:12, 4:12] = 255
    click = [{"type": "down", "button": 1}, {"type": "up", "button": 1}]
    actions = [FrameActions(f, f / 15, (16, 16), click if f == 1 else []) for f in range(4)]
    episodes = [(np.stack([icon, after]), np.asarray([0, 0, 1, 1]), actions),
                (bare[None], np.zeros(4, int), actions)]
    near = TransitionMemory.build(episodes, SCREEN, {"patch_weight": 0.0})  # the thumbnail alone decides
    uniform = TransitionMemory(near.arrays, {**near.config, "thumb_far": 1.0, "thumb_near": 0.0})
    steps = _steps(click=True, pointer=(16, 16))
    assert uniform.recall(_icon(False), steps, SCREEN)[0] is None
    change, _ = near.recall(_icon(False), steps, SCREEN)
    assert change is not None and (change.apply(_icon(False)) == _icon(True)).all()
    weights = near._near_weights(input_features(steps, SCREEN), (H, W)).reshape(12, 16, 3)[..., 0]
    assert weights[2, 2] == 2.5 and weights[2, 4] == 2.5 and weights[2, 5] == 0.5 and weights[10, 11] == 0.5


def _window() -> np.ndarray:
    """The 48x64 desktop of :func:`_icon` with a window open over it (what a double click opens)."""
    fb = _icon(True)
    fb[16:44, 8:60] = 230
    return fb


def test_a_double_click_opens_what_a_single_click_only_selects() -> None:
    """Trained on one click on the icon (it is selected) and one double click at the same place and
    step (a window opens), the memory tells them apart by the click count alone: the latest press
    is the same, and the two presses of a double click spread over consecutive steps count too.
    Without the count (its weight 0) both read as the single click stored first."""
    fbs = np.stack([_icon(False), _icon(True), _window()])
    click = [{"type": "down", "button": 1}, {"type": "up", "button": 1}]
    episodes = []
    for presses, after in ((1, 1), (2, 2)):
        actions = [FrameActions(f, f / 15, (16, 16), click * presses if f == 1 else []) for f in range(4)]
        episodes.append((fbs, np.asarray([0, 0, after, after]), actions))
    memory = TransitionMemory.build(episodes, SCREEN)
    weights = memory.config["input_weights"]
    blind = TransitionMemory(memory.arrays, {**memory.config, "input_weights": [*weights[:CLICKS], 0, *weights[CLICKS + 1:]]})
    for steps_apart in (0, 1):  # both presses in the latest step (a browser's), or one step apart
        steps = _steps(click=False, pointer=(16, 16))
        steps[-1].events += click
        steps[-1 - steps_apart].events += click
        assert input_features(steps, SCREEN)[CLICKS] == 2
        assert (memory.recall(_icon(False), steps, SCREEN)[0].apply(_icon(False)) == _window()).all()
        assert (blind.recall(_icon(False), steps, SCREEN)[0].apply(_icon(False)) == _icon(True)).all()
    single = _steps(click=False, pointer=(16, 16))
    single[-1].events += click
    single[-5].events += click  # an earlier click, more than a double click's few steps before
    assert input_features(single, SCREEN)[CLICKS] == 1
    assert (memory.recall(_icon(False), single, SCREEN)[0].apply(_icon(False)) == _icon(True)).all()
    # a memory and settings saved before the count still load: each stored press reads as one click
    older = TransitionMemory({**memory.arrays, "inputs": memory.arrays["inputs"][:, :CLICKS]},
                             {**memory.config, "input_weights": weights[:CLICKS]})
    assert len(older.config["input_weights"]) == FEATURES
    assert (older.inputs[:, CLICKS] == older.weights[CLICKS] * memory.arrays["inputs"][:, 4]).all()
    assert (older.recall(_icon(False), single, SCREEN)[0].apply(_icon(False)) == _icon(True)).all()


def _icons(lit: str = "", window: bool = False, page: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """A white 48x64 view with two icons of one look, "a" at the top left and "b" below it (an
    orange folder over a label whose dark word differs), ``lit`` the one selected (the folder tinted in
    a light blue square, the label a blue bar, its word white); ``window``: a window open on the right.
    On a dark ``page`` (the desktop's wallpaper) the words are white, lit or not."""
    fb = np.full((H, W, 3), page, np.uint8)
    dark = float(np.mean(page)) < 128
    for name, top in (("a", 2), ("b", 26)):
        box = fb[top:top + 20, 2:20]
        if name == lit:
            box[1:13, 1:17] = (120, 150, 230)
            box[13:19, 0:18] = (50, 100, 220)
        box[2:12, 4:14] = (230, 150, 40) if name != lit else (200, 140, 90)
        ink = [(16, 6), (16, 7), (17, 9), (16, 11)] if name == "a" else [(16, 6), (16, 7), (17, 9), (16, 12)]
        for y, x in ink:
            box[y, x] = 255 if name == lit or dark else 40
    if window:
        fb[4:44, 30:60] = 240
    return fb


def test_a_click_lights_an_icon_where_training_lit_another_of_its_look_and_nothing_follows() -> None:
    """Trained on one click that lit icon "a" (a window opened three steps later), a click on icon "b",
    which no episode clicked: the nearest click's change would light "a" where it was; with
    ``click_items`` the stored icon lit is found unlit under the present press and "b" is lit there,
    its own word drawn white on the selection's blue. The steps after the click draw nothing, where
    the nearest transitions of a press as old open training's window."""
    frames = np.stack([_icons(), _icons("a"), _icons("a", window=True)])
    click = [{"type": "down", "button": 1}, {"type": "up", "button": 1}]
    a_at, b_at = (22, 20), (22, 68)  # the pointer's coordinates of the two icons' folders
    actions = [FrameActions(f, f / 15, a_at, click if f == 2 else []) for f in range(10)]
    memory = TransitionMemory.build([(frames, np.asarray([0, 0, 0, 1, 1, 1, 2, 2, 2, 2]), actions)], SCREEN)
    items = TransitionMemory(memory.arrays, {**memory.config, "click_items": True})
    assert len(memory.arrays["item_boxes"]) == 1  # the lit icon, kept apart from the change it was part of
    steps = _steps(click=True, pointer=b_at)
    nearest, _ = memory.recall(_icons(), steps, SCREEN)
    assert nearest is not None and (nearest.apply(_icons()) == _icons("a")).all()  # "a" lit, not "b"
    lit, _ = items.recall(_icons(), steps, SCREEN)
    assert lit is not None
    drawn = lit.apply(_icons())
    assert (drawn[:24] == _icons()[:24]).all()  # "a" as it was
    box = drawn[26:46, 2:20]
    assert (box[2:12, 4:14] == (200, 140, 90)).all()  # the folder tinted as a's was
    word = np.zeros((20, 18), bool)
    word[[16, 16, 17, 16], [6, 7, 9, 12]] = True
    assert (box[word].min(-1) >= 200).all()  # b's own word, white ...
    bar = box[14:19, 4:15][~word[14:19, 4:15]].astype(int)
    assert (bar.max(-1) - bar.min(-1) >= 60).all() and (bar[..., 2] > bar[..., 0]).all()  # ... on a blue bar
    # the steps after: training's window opened three steps after its click; here nothing comes
    rollout = [_icons(), drawn]
    for age in range(1, 5):
        steps = [*steps[1:], FrameActions(8 + age, (8 + age) / 15, b_at)]
        def past(k: int) -> np.ndarray | None:  # the frame k steps before the present one
            return rollout[-1 - k] if k < len(rollout) else None
        assert (memory.recall(rollout[-1], steps, SCREEN, past=past)[0] is not None) == (age == 3)
        assert items.recall(rollout[-1], steps, SCREEN, past=past)[0] is None
        rollout.append(rollout[-1])
    # a click on "a" now lights it and unselects "b" as the frames before showed it
    steps = [*steps[1:], FrameActions(13, 13 / 15, a_at, click)]
    again = items.recall(rollout[-1], steps, SCREEN, past=lambda k: rollout[-1 - k] if k < len(rollout) else None)[0]
    assert again is not None
    both = again.apply(rollout[-1])
    assert (both[24:] == _icons()[24:]).all()
    assert (both[4:14, 6:16] == (200, 140, 90)).all()
    # "b" selected since before any frame kept: unselected by the stored icon's colours (unlit_items)
    steps = _steps(click=True, pointer=a_at)
    kept = items.recall(_icons("b"), steps, SCREEN)[0].apply(_icons("b"))
    assert (kept[24:] == _icons("b")[24:]).all()
    unlit = TransitionMemory(memory.arrays, {**items.config, "unlit_items": True})
    b = unlit.recall(_icons("b"), steps, SCREEN)[0].apply(_icons("b"))[26:46, 2:20]
    assert (b[2:12, 4:14] == (230, 150, 40)).all()  # the folder as it was
    assert (b[13:19][~word[13:19]] == 255).all() and (b[word].max(-1) < 60).all()  # a white page, the word dark
    # a click on bare desktop lights nothing; a memory saved before the icons recalls as before
    bare = _steps(click=True, pointer=(100, 80))
    assert items._clicked_item(_icons(), input_features(bare, SCREEN)) is None
    older = TransitionMemory({k: v for k, v in memory.arrays.items() if not k.startswith("item_")}, items.config)
    assert (older.recall(_icons(), _steps(click=True, pointer=b_at), SCREEN)[0].apply(_icons()) == _icons("a")).all()


def test_a_label_on_the_wallpaper_is_lit_by_the_recolouring_alone() -> None:
    """On a dark page the words are light already: the selected label is not redrawn from the word's
    darkness (that turned the desktop's label into a pale box), the lit icon takes only colours the
    stored selection shows, and the word stays white."""
    wall = (60, 80, 110)
    frames = np.stack([_icons(page=wall), _icons("a", page=wall)])
    click = [{"type": "down", "button": 1}, {"type": "up", "button": 1}]
    actions = [FrameActions(f, f / 15, (22, 20), click if f == 2 else []) for f in range(6)]
    memory = TransitionMemory.build([(frames, np.asarray([0, 0, 0, 1, 1, 1]), actions)], SCREEN, {"click_items": True})
    lit = memory.recall(_icons(page=wall), _steps(click=True, pointer=(22, 68)), SCREEN)[0]
    assert lit is not None
    b = lit.apply(_icons(page=wall))[26:46, 2:20].reshape(-1, 3)
    stored = {tuple(c) for c in _icons("a", page=wall)[2:22, 2:20].reshape(-1, 3)}
    assert {tuple(c) for c in b} <= stored and (b == (200, 140, 90)).all(-1).sum() == 100


def test_the_mean_gap_never_exceeds_the_rms_it_prunes() -> None:
    """``_mean_gap`` skips a "before" search (``follow``) whose every place is farther than the tolerance:
    it must be a lower bound of ``_patch_rms`` at every place, on flat GUI colours and on noise."""
    rng = np.random.default_rng(0)
    flat = np.repeat(np.repeat(rng.integers(0, 256, (6, 8, 3)), 8, 0), 8, 1).astype(np.uint8)  # (48, 64)
    noise = rng.integers(0, 256, (48, 64, 3)).astype(np.uint8)
    for picture in (flat, noise):
        for patch in (picture[5:17, 9:30], noise[:7, :5], np.full((9, 9, 3), 200, np.uint8)):
            gap, rms = _mean_gap(picture, patch), _patch_rms(picture, patch)
            assert gap.shape == rms.shape and (gap <= rms + 1e-2).all()
    assert _mean_gap(flat, flat[5:17, 9:30])[5, 9] == 0.0


def test_a_shortcut_is_its_own_key_not_the_letter_it_shares() -> None:
    """Trained on v typed (the icon is selected: a stand-in for its glyph) and on ctrl+v (a window
    opens: a paste), the memory answers ctrl+v with the window and v with the glyph: the modifiers
    held under a key make it another key, and a shortcut types nothing. shift alone does not."""
    fbs = np.stack([_icon(False), _icon(True), _window()])
    episodes = []
    for keys, after in ((["v"], 1), (["ctrl", "v"], 2)):
        actions = [FrameActions(f, f / 15, (100, 80), meta_to_events({"type": "key", "keys": keys}) if f == 1 else [])
                   for f in range(4)]
        episodes.append((fbs, np.asarray([0, 0, after, after]), actions))
    memory = TransitionMemory.build(episodes, SCREEN)
    for keys, expected in ((["Control_L", "v"], _window()), (["v"], _icon(True)), (["shift", "v"], _icon(True))):
        steps = _steps(click=False)
        steps[-1].events += meta_to_events({"type": "key", "keys": keys})
        assert (memory.recall(_icon(False), steps, SCREEN)[0].apply(_icon(False)) == expected).all(), keys
    held = _steps(click=False)  # ctrl pressed steps before the v, still held
    held[-3].events.append({"type": "key_down", "key": "ctrl"})
    held[-1].events += [{"type": "key_down", "key": "v"}, {"type": "key_up", "key": "v"}]
    assert (memory.recall(_icon(False), held, SCREEN)[0].apply(_icon(False)) == _window()).all()


def test_the_first_key_of_a_word_is_told_from_the_letters_after_it() -> None:
    """Trained on x typed as a word's first key on a desktop with its icon selected (the selection
    clears, as xfdesktop's does) and on x typed after two other letters on the same screen (nothing
    changes), the memory tells the two apart by how many keys the window holds; without the count
    (its weight 0) both read alike. Modifiers are not counted: shift+x is still a first key."""
    fbs = np.stack([_icon(True), _icon(False)])
    x = [{"type": "key_down", "key": "x"}, {"type": "key_up", "key": "x"}]
    episodes = []
    for before, after in (([], 1), (["y", "z"], 0)):
        actions = [FrameActions(f, f / 15, (100, 80)) for f in range(6)]
        for f, key in enumerate(before, start=1):
            actions[f].events += [{"type": "key_down", "key": key}, {"type": "key_up", "key": key}]
        actions[3].events += x
        episodes.append((fbs, np.asarray([0, 0, 0, 0, after, after]), actions))
    memory = TransitionMemory.build(episodes, SCREEN)
    weights = memory.config["input_weights"]
    blind = TransitionMemory(memory.arrays, {**memory.config, "input_weights": [*weights[:KEYS], 0.0]})
    first, third = _steps(click=False), _steps(click=False)
    first[-1].events += [{"type": "key_down", "key": "shift"}, *x, {"type": "key_up", "key": "shift"}]
    third[-3].events += [{"type": "key_down", "key": "a"}, {"type": "key_up", "key": "a"}]
    third[-2].events += [{"type": "key_down", "key": "b"}, {"type": "key_up", "key": "b"}]
    third[-1].events += x
    assert input_features(first, SCREEN)[KEYS] == 1 and input_features(third, SCREEN)[KEYS] == 3
    change, _ = memory.recall(_icon(True), first, SCREEN)
    assert change is not None and (change.apply(_icon(True)) == _icon(False)).all()
    assert memory.recall(_icon(True), third, SCREEN)[0] is None
    assert (blind.recall(_icon(True), first, SCREEN)[0] is None) == (blind.recall(_icon(True), third, SCREEN)[0] is None)
    # a memory and settings saved before the count still load: each stored key reads as a first
    older = TransitionMemory({**memory.arrays, "inputs": memory.arrays["inputs"][:, :KEYS]},
                             {**memory.config, "input_weights": weights[:KEYS]})
    pressed = memory.arrays["inputs"][:, 10] < 20
    assert len(older.config["input_weights"]) == FEATURES and pressed.any() and not pressed.all()
    assert (older.inputs[:, KEYS] == older.weights[KEYS] * pressed).all()


def _still(frames: int) -> list[FrameActions]:
    """``frames`` records of a pointer resting at (60, 40), no input at all."""
    return [FrameActions(f, f / 15, (60, 40)) for f in range(frames)]


def test_the_step_before_decides_which_training_episode_the_rollout_follows() -> None:
    """Without any input, a half-drawn window (H) either finishes drawing (an animation: bare B, then
    H, then the full window F) or stays (a resting state). One step's key cannot tell the two apart
    (the same screen, the same input); the sequence key can: coming from B it is the animation,
    coming from H it is the resting state."""
    bare = _frame(W, H, False, (0, 0), cursor=False)
    full = _frame(W, H, True, (0, 0), cursor=False)
    half = bare.copy()
    half[20:40] = full[20:40]
    animation = (np.stack([bare, half, full]), np.asarray([0, 0, 1, 2, 2, 2]), _still(6))
    resting = (np.stack([half]), np.zeros(6, int), _still(6))
    steps = _still(9)
    for order in ([animation, resting], [resting, animation]):  # ties of one step's key: storage order
        memory = TransitionMemory.build(order, SCREEN)
        from_bare, _ = memory.recall(half, steps[1:], SCREEN, previous=(bare, steps[:-1]))
        from_half, _ = memory.recall(half, steps[1:], SCREEN, previous=(half, steps[:-1]))
        assert from_bare is not None and (from_bare.apply(half) == full).all()
        assert from_half is None
        # the distance is one step's plus the weighted distance of each transition's predecessor
        one = memory.distances(half, steps[1:], SCREEN)
        two = memory.distances(half, steps[1:], SCREEN, previous=(bare, steps[:-1]))
        before = memory.distances(bare, steps[:-1], SCREEN)
        inner = [i for i in range(1, len(memory)) if i not in memory.starts]
        assert np.allclose(two[inner], one[inner] + 0.5 * before[[i - 1 for i in inner]])
    alone = TransitionMemory(memory.arrays, {"sequence_weight": 0.0})  # the same for either step before
    assert (alone.recall(half, steps[1:], SCREEN, previous=(bare, steps[:-1]))[0] is None) == \
        (alone.recall(half, steps[1:], SCREEN, previous=(half, steps[:-1]))[0] is None)


def test_a_saved_memory_recalls_the_same_and_a_bad_file_is_one_clear_error(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    episodes = [_episode(rng) for _ in range(2)]
    memory = TransitionMemory.build(episodes, SCREEN, {"thumb_weight": 10.0})
    memory.save(tmp_path / "memory.npz")
    again = TransitionMemory.load(tmp_path / "memory.npz", {"thumb_weight": 10.0})
    closed = episodes[0][0][0]
    for click in (True, False):
        a, b = memory.recall(closed, _steps(click), SCREEN), again.recall(closed, _steps(click), SCREEN)
        assert a[1] == pytest.approx(b[1]) and (a[0] is None) == (b[0] is None)
    assert not list(tmp_path.glob(".*"))  # written whole: no temp file left
    assert all(np.array_equal(again.arrays[k], v) for k, v in memory.arrays.items())
    np.savez_compressed(tmp_path / "deflate.npz", **memory.arrays)  # as memories were saved before LZMA
    older = TransitionMemory.load(tmp_path / "deflate.npz", {"thumb_weight": 10.0})
    assert older.recall(closed, _steps(True), SCREEN)[1] == pytest.approx(memory.recall(closed, _steps(True), SCREEN)[1])
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(NCError, match="bad.npz: not a transition memory"):
        TransitionMemory.load(tmp_path / "bad.npz", {})
    saved = (tmp_path / "memory.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(saved[: len(saved) - 200])  # a copy cut short
    with pytest.raises(NCError, match="cut.npz: not a transition memory"):
        TransitionMemory.load(tmp_path / "cut.npz", {})
    with pytest.raises(NCError, match="not divisible"):
        thumbnail(np.zeros((50, 64, 3), np.uint8))


def _export_with_memory(tmp_path: Path, ds: Path) -> Any:
    """An untrained tiny DeskDelta network exported to ``tmp_path/m`` with ``ds``'s memory (the CLI result)."""
    cfg = preset_config("guiworld-delta")["model"]
    cfg.update(height=H, width=W, screen=list(SCREEN), memory=0)
    cfg["net"] = {"channels": [16, 16, 16], "cond_dim": 16, "blocks": 1, "heads": 2}
    torch.manual_seed(0)
    DeskDeltaModel(cfg).save_pretrained(tmp_path / "net")
    result = CliRunner().invoke(main, ["export", "--model", str(tmp_path / "net"), "--out", str(tmp_path / "m"),
                                       "--memory-data", str(ds)])
    assert result.exit_code == 0, result.output
    return result


def test_recall_settings_are_scored_on_folds_of_held_out_training_episodes(tmp_path: Path) -> None:
    """``ncomp experiment desktop-recall``: each fold's memory is built without its held-out episode;
    the model's own settings replay most of its toggles (3 training episodes leave some click places
    unseen), a memory blind to screen and input (every weight 0) replays the same stored step, no
    change, everywhere: its paired difference is clear of zero."""
    ds = make_desktop_dataset(tmp_path, episodes=5, frames=40, cursor_free=True, period=5)
    _export_with_memory(tmp_path, ds)
    zeros = ";".join(["input_weights=" + str([0] * 15), "thumb_weight=0", "patch_weight=0"])
    args = ["experiment", "desktop-recall", "--model", str(tmp_path / "m"), "--data", str(ds),
            "--out", str(tmp_path / "cv"), "--policies", "synthetic", "--folds", "2", "--per-policy", "1"]
    result = CliRunner().invoke(main, [*args, "--setting", "own:", "--setting", "blind:" + zeros])
    assert result.exit_code == 0, result.output
    import json

    report = json.loads((tmp_path / "cv" / "recall.json").read_text())
    assert [len(h) for h in report["held_out"]] == [1, 1] and report["held_out"][0] != report["held_out"][1]
    own, blind = report["rows"]["own"], report["rows"]["blind"]
    assert own["cases"] == blind["cases"] == 10  # 5 clicks whose screen differs 15 frames later, per episode
    assert own["action_effect"] >= 0.5 and blind["action_effect"] == 0.0  # the blind replays "no change"
    assert blind["action_effect_diff"][1][1] < 0  # paired over the same cases: clear of zero
    assert own["rollout31_ssim"] > blind["rollout31_ssim"] and own["rollout150_ssim"] > blind["rollout150_ssim"]
    assert "| blind |" in (tmp_path / "cv" / "recall.md").read_text()
    # another dataset's train episodes join every fold's memory and are never held out: here a copy of
    # the same collection (4 train episodes of 39 transitions), so each held-out episode is stored
    # verbatim and replayed exactly
    more = make_desktop_dataset(tmp_path / "more", episodes=5, frames=40, cursor_free=True, period=5)
    result = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "cv2"), "--setting", "own:",
                                       "--extra-data", str(more)])
    assert result.exit_code == 0, result.output
    wider = json.loads((tmp_path / "cv2" / "recall.json").read_text())
    assert wider["held_out"] == report["held_out"] and wider["extra_data"] == [str(more)]
    row = wider["rows"]["own"]
    assert row["cases"] == 10 and row["action_effect"] == 1.0 and row["rollout150_ssim"] == pytest.approx(1.0)
    assert wider["memory_transitions"] == [n + 4 * 39 for n in report["memory_transitions"]] == [273, 273]
    assert f"the train episodes of `{more}`" in (tmp_path / "cv2" / "recall.md").read_text()
    bad = CliRunner().invoke(main, [*args, "--setting", "x:no_such_key=1"])
    assert bad.exit_code != 0 and "unknown recall setting" in bad.output
    short = CliRunner().invoke(main, [*args, "--folds", "9", "--setting", "own:"])
    assert short.exit_code != 0 and "need 9 training episodes" in short.output


def test_exported_memory_drives_rollout_and_runtime_alike(tmp_path: Path) -> None:
    """``ncomp export --memory-data`` stores the memory beside the weights; an untrained network with it
    opens and closes the window of a held-out episode exactly, without it only copies, and a runtime
    session gives the offline rollout's frames bit for bit."""
    ds = make_desktop_dataset(tmp_path, episodes=4, frames=20, cursor_free=True)
    result = _export_with_memory(tmp_path, ds)
    assert (tmp_path / "m" / MEMORY_FILE).is_file() and "distinct changes" in result.output
    one = int(result.output.split("transition memory: ")[1].split()[0])
    more = make_desktop_dataset(tmp_path / "more", episodes=3, frames=20, cursor_free=True, seed=5)
    both = CliRunner().invoke(main, ["export", "--model", str(tmp_path / "net"), "--out", str(tmp_path / "m2"),
                                     "--memory-data", str(ds), "--memory-data", str(more)])
    assert both.exit_code == 0, both.output
    assert int(both.output.split("transition memory: ")[1].split()[0]) == one + 2 * 19  # 2 train episodes more
    # --half: the network's weights stored as float16, half the bytes, loaded back as float32
    half = CliRunner().invoke(main, ["export", "--model", str(tmp_path / "net"), "--out", str(tmp_path / "h"),
                                     "--half", "--memory-data", str(ds)])
    assert half.exit_code == 0, half.output
    full_size = (tmp_path / "m" / "deskdelta.safetensors").stat().st_size
    assert (tmp_path / "h" / "deskdelta.safetensors").stat().st_size < 0.55 * full_size
    a, b = DeskDeltaModel.from_pretrained(tmp_path / "m"), DeskDeltaModel.from_pretrained(tmp_path / "h")
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert y.dtype == x.dtype and torch.allclose(x, y, rtol=2 ** -10, atol=1e-7), name
    import json

    pinned = json.loads((tmp_path / "m" / "config.json").read_text())["model"]["recall"]
    assert pinned["mode"] == "alone" and len(pinned["input_weights"]) == FEATURES  # later defaults cannot change it
    from neuralcomputer.data.dataset import load_manifest
    from neuralcomputer.data.desktop.actions import read_actions
    from neuralcomputer.data.desktop.episode import read_desktop_clip

    held_out = next(r for r in load_manifest(ds) if r["split"] == "val")  # not in the memory
    clip = read_desktop_clip(ds / held_out["path"], (H, W))
    actions = read_actions(ds / held_out["actions"], 15.0)
    truth = clip.frames(np.arange(len(clip)))
    roll = load_pipeline(tmp_path / "m")
    assert isinstance(roll, DeskDeltaRollout) and roll.recall == "alone"
    first = clip.frames([0], cursor=False)[0]
    frames, _ = roll.rollout(first, actions)
    assert (frames == truth).all()  # every toggle of the unseen episode, pixel for pixel
    copied, _ = load_pipeline(tmp_path / "m", recall="off").rollout(first, actions)
    with pytest.raises(NCError, match="needs a transition memory"):
        load_pipeline(tmp_path / "net", recall="alone")
    assert not (copied == truth).all()  # the untrained network alone never toggles the window
    live = replay_live(tmp_path / "m", first, actions)
    assert all((a == b).all() for a, b in zip(live, frames, strict=True))
    # a folder that is not a dataset: one clear error and no half-made model directory
    bad = CliRunner().invoke(main, ["export", "--model", str(tmp_path / "net"), "--out", str(tmp_path / "x"),
                                    "--memory-data", str(tmp_path)])
    assert bad.exit_code != 0 and not (tmp_path / "x").exists()


def test_step_window_of_a_slice_is_the_window_of_the_whole() -> None:
    """The rollout hands the memory only the last records (a long session stays fast): same steps."""
    rng = np.random.default_rng(3)
    actions = _episode(rng, 30)[2]
    for target in (2, 9, 29):
        s = max(0, target - 8)
        whole = step_window(actions, target, 8)
        part = step_window(actions[s: target + 1], target - s, 8)
        assert [(a.pointer, a.events) for a in whole] == [(a.pointer, a.events) for a in part]


BUNDLED = Path(__file__).resolve().parents[1] / "models" / "guiworld-delta"


def _brightness(frame: np.ndarray) -> float:
    """Mean brightness of where the Applications menu opens (the panel's top-left, below the panel)."""
    return float(frame[20:110, 5:80].mean())


def test_the_bundled_desktop_opens_the_applications_menu_when_clicked() -> None:
    """A user's click on the panel's Applications button (one step: press and release) on the bundled
    start screen: the light menu covers the dark desktop within a few frames, and only then."""
    c = NeuralComputer.load(BUNDLED)
    first = c.reset()
    assert first.shape == (192, 256, 3) and _brightness(first) < 120  # the blue desktop
    shown = [c.step({"type": "move", "x": 300, "y": 250}).frames[-1] for _ in range(3)]
    assert max(_brightness(f) for f in shown) < 120  # moving the pointer about opens nothing
    frames = [c.step({"type": "click", "x": 41, "y": 15, "button": 1, "count": 1}).frames[-1]]
    frames += [c.step({"type": "frame", "events": [], "meta": [], "pointer": [41, 15]}).frames[-1] for _ in range(5)]
    assert _brightness(frames[-1]) > 200, [round(_brightness(f)) for f in frames]  # the menu is open


def _bundled_terminal() -> tuple[NeuralComputer, np.ndarray]:
    """The bundled desktop after Applications, *Terminal Emulator* and 25 quiet frames, and its last frame."""
    c = NeuralComputer.load(BUNDLED)
    c.reset()
    idle = {"type": "frame", "events": [], "meta": [], "pointer": [80, 44]}
    c.step({"type": "click", "x": 30, "y": 7, "button": 1, "count": 1})
    for _ in range(8):
        c.step({**idle, "pointer": [30, 7]})
    c.step({"type": "move", "x": 80, "y": 44})
    c.step({"type": "click", "x": 80, "y": 44, "button": 1, "count": 1})
    before = [c.step(idle).frames[-1] for _ in range(25)][-1]
    assert before[40:180, 10:240].mean() < 60  # the terminal's black window covers the desktop
    return c, before


@pytest.mark.parametrize(("text", "every"), [("ls", 3), ("ls -l", 1)])
def test_the_bundled_desktop_opens_a_terminal_and_types_each_key_once(text: str, every: int) -> None:
    """A user at the bundled desktop: Applications, Terminal Emulator, then ``text`` typed at a key
    every ``every`` frames (press and release in one frame, as the page sends them): the prompt line
    gains one glyph per key and the caret after them, cells of 5 px on one text row, each unlike the
    next. At a key every third frame "ls" was drawn "llss" before ``typing_once``; at a key every frame
    "ls -l" was "ll" before ``typing_early`` and ``typing_caret``."""
    c, before = _bundled_terminal()
    idle = {"type": "frame", "events": [], "meta": [], "pointer": [80, 44]}
    for key in text:
        key = "space" if key == " " else key
        after = c.step({**idle, "events": [{"type": "key_down", "key": key}, {"type": "key_up", "key": key}]}).frames[-1]
        after = [after, *(c.step(idle).frames[-1] for _ in range(every - 1))][-1]
    after = [after, *(c.step(idle).frames[-1] for _ in range(3))][-1]
    changed = np.any(before != after, axis=-1)
    rows, cols = np.flatnonzero(changed.any(1)), np.flatnonzero(changed.any(0))
    cells = len(text) + 1
    assert rows[-1] - rows[0] < 12 and 5 * cells - 1 <= cols[-1] - cols[0] + 1 <= 5 * cells + 3, (rows, cols)
    x, y = cols[0], slice(rows[0], rows[-1] + 1)
    for k in range(len(text) - 1):  # no key drawn twice in a row
        assert not np.array_equal(after[y, x + 5 * k:x + 5 * k + 5], after[y, x + 5 * k + 5:x + 5 * k + 10])


def test_the_bundled_terminal_answers_each_return_with_a_new_prompt_below() -> None:
    """A user at the bundled desktop's terminal types ten commands, each with Return (a key every other
    frame, 8 quiet frames after): after each Return the screen shows one block caret, on a row below the
    one before (the output and the new prompt came below the command, its caret went) while the page has
    room, the lines above staying as they were; at the page's last row the page scrolls up and the caret
    stays on that row. Before ``named_keys``, Return recalled a "7" typed on a like screen (a glyph beside
    the prompt); before ``caret_rows``, the second Return's new line came where training's first command
    had been, over the present one's; at the last row, before the scroll, over the commands above; before
    ``terminal_glyphs``, the "c" of ``cd`` opened a file manager's menu over the seventh prompt."""
    c, _ = _bundled_terminal()
    idle = {"type": "frame", "events": [], "meta": [], "pointer": [80, 44]}
    rows, frame, scrolled = [], None, 0
    for command in ("ls -l", "echo hi", "pwd", "date", "ls", "echo a", "cd", "ls", "whoami", "pwd"):
        for key in [*command, "Return"]:
            key = "space" if key == " " else key
            c.step({**idle, "events": [{"type": "key_down", "key": key}, {"type": "key_up", "key": key}]})
            c.step(idle)
        before, frame = frame, [c.step(idle).frames[-1] for _ in range(8)][-1]
        carets = _caret_boxes(frame)
        assert len(carets) == 1, (command, carets)
        rows.append(carets[0][0].start)
        if before is not None:  # the page's lines above the command as they were, or all moved up together
            top, end, cols = 40, rows[-2] - 1, slice(1, 150)  # below the menu bar, above the command, its text
            up = [k for k in range(end - top) if (frame[top:end - k, cols] == before[top + k:end, cols]).all()]
            assert up and rows[-1] >= rows[-2], (command, rows)
            scrolled += up[0] > 0
    assert rows[0] < rows[1] < rows[2] < rows[3] and scrolled >= 2, rows


def test_the_bundled_desktop_opens_its_context_menu_at_the_right_click() -> None:
    """A user's right-click on the bare desktop of the bundled model, at two places: a light menu
    opens within a few frames with the pointer on its edge or inside it (a context menu opens at the
    pointer, flipped near the screen's edges), each where its click was."""
    boxes = []
    for x, y in ((120, 100), (300, 200)):  # screen px (512x384); the model's frame is half that
        c = NeuralComputer.load(BUNDLED)
        c.reset()
        c.step({"type": "move", "x": x, "y": y})
        frames = [c.step({"type": "click", "x": x, "y": y, "button": 3, "count": 1}).frames[-1]]
        frames += [c.step({"type": "frame", "events": [], "meta": [], "pointer": [x, y]}).frames[-1] for _ in range(4)]
        light = frames[-1].astype(np.float32).mean(-1) > 200
        light[:16] = light[:64, :48] = False  # the panel and the Home icon's label
        assert light.sum() > 3000, "no menu opened"  # a menu, not the arrow or a highlight
        rows, cols = np.flatnonzero(light.any(1)), np.flatnonzero(light.any(0))
        box = (rows[0], rows[-1], cols[0], cols[-1])
        assert light.sum() > 0.6 * (box[1] - box[0]) * (box[3] - box[2])  # one light block
        assert box[0] - 3 <= y // 2 <= box[1] + 3 and box[2] - 3 <= x // 2 <= box[3] + 3, (box, (y // 2, x // 2))
        boxes.append(box)
    assert boxes[0] != boxes[1]


def test_the_bundled_desktop_lights_the_item_under_the_pointer_in_a_menu_where_training_had_none() -> None:
    """A user's right-click on the bundled model's bare desktop where no training episode opened a menu,
    then the pointer gliding down over the menu (4 px a frame): the item under the pointer is lit (the
    theme's selection colour along a row within 3 px of the pointer's) in most glide frames, and never
    more than one item at once (``recall.hover``, docs/results/guiworld-delta, "A hover at a new place",
    where the thin line it can leave at an item's edge is shown)."""
    selection = (53, 132, 228)
    c = NeuralComputer.load(BUNDLED)
    c.reset()
    x, y = 300, 150  # screen px (512x384); the model's frame is half that
    c.step({"type": "move", "x": x, "y": y})
    c.step({"type": "click", "x": x, "y": y, "button": 3, "count": 1})
    for _ in range(3):
        c.step({"type": "frame", "events": [], "meta": [], "pointer": [x, y]})
    lit_under, bars = [], []
    for _ in range(24):
        y += 4
        frame = c.step({"type": "frame", "events": [{"type": "move", "x": x + 10, "y": y}], "meta": [],
                        "pointer": [x + 10, y]}).frames[-1]
        rows = (frame == selection).all(-1).sum(1) >= 40  # rows of a lit item
        lit_under.append(bool(rows[max(0, y // 2 - 3):y // 2 + 4].any()))
        lit = np.flatnonzero(rows)  # lit items: such rows, a gap of a few text rows within one, 4 rows or more
        groups = np.split(lit, np.flatnonzero(np.diff(lit) > 6) + 1) if len(lit) else []
        bars.append(sum(g[-1] - g[0] >= 3 for g in groups))  # (a 1-row line left at an item's edge is no item)
    assert sum(lit_under) >= 16, lit_under
    assert max(bars) <= 1, bars
