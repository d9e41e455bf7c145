"""A transition memory for DeskDelta: what the screen did next, recalled from the training episodes.

A desktop is the same program every time: a click on the Applications button opens the same menu, a
pointer over its third item highlights that item. DeskDelta's network has to *draw* such an answer
from weights trained for minutes; the memory instead keeps every training transition and, at each
step, finds the one whose situation is nearest to the present one and replays what it changed.
It is a k-nearest-neighbour world model (a nonparametric learner: "training" is storing the
transitions, its parameters are the keys and the changes).

A transition (frame t-1 -> t) is keyed by

* the framebuffer before it as a 12x16 thumbnail (RGB means over blocks: which menus and windows are
  open; 576 numbers in [0, 1]), and
* the input of the last ``history`` steps (:func:`input_features`): the pointer now and one step
  before, the latest button press or wheel notch (where, how many steps ago, which button, whether
  it was released since: so a user's click, press and release in one step, reads as the
  collector's, which spreads them over two), how many presses that click is (2: a double click, its
  presses at most ``CLICK_STEPS`` steps apart: on a title bar or an icon it does what one click does
  not) and the latest key press (how many steps ago, which key: with ctrl, alt or super held under
  it, a shortcut of its own, so ctrl+v is not v and types no glyph; a memory saved before that reads
  its stored shortcuts as their last key) and how many keys the window holds (up to ``KEY_RUN``: a
  word's first letter clears a selected icon or opens a type-ahead search, the letters after it
  only type; a memory saved before the count reads each stored key as a first),

* what is under the latest button press (else under the pointer): a 16x32 px patch around it as 4x8
  grey block means (:func:`pointer_patch`), so that a click on a menu item or a taskbar entry finds
  the training clicks on that item wherever the menu or the entry was drawn,

each part scaled by a weight (``thumb_weight``, ``input_weights``, ``patch_weight``; the thumbnail's blocks
near the press or pointer weigh more than the rest, below), so that the squared distance
trades "the screen looks the same" against "the same input at the same place and time". Its value
is the change: the pixels that differ between the two framebuffers and their new colours, or
nothing. The recalled change is pasted onto the present framebuffer; every other pixel is copied.
Steps where nothing changes are kept too: they are what tells the memory that a pointer moving
over the empty desktop changes nothing.

Typing (``typing`` setting): a key typed into a terminal or an editor draws its glyph at the caret,
and the caret is rarely where it was in any training episode. When the latest key pressed in the
window is printable and the nearest transition changes the screen, the memory replays the nearest
change made under the *same key* instead (the glyph is that key's). A small change (at most
``SMALL`` pixels a side) whose box before it does not fit the present screen where it was stored is
moved to the nearest place where it does (within ``fit_rms`` 8-bit levels: the caret block or line
the glyph replaces); found nowhere, it stays where it was stored. Measured on the val episodes
(docs/results/guiworld-delta): action effect 0.542 -> 0.625; limiting it to glyph-sized changes
kept 0.556, letting any key (Return, shortcuts) choose 0.597. Typed as a person types at the browser
(press and release in one frame, a key every third frame), three more settings: ``typing_candidates``
(the first of the key's nearest changes whose "before" fits somewhere: a terminal's caret block is
not an editor's caret line), ``lowest_caret`` (of the places a caret fits, the lowest: a replayed
Return can leave the old caret above) and ``typing_once`` (the step after the one that drew the
glyph draws nothing: "llss" for "ls" before). On recorded episodes they are neutral; the browser
user is what they are for (docs/results/guiworld-delta, "Typing as a person types"). Typed fast (a
key every frame) and after a Return's replay, four more: ``typing_early`` (a glyph training drew a
step late is drawn at the press step: the next key would be the latest by then), ``typing_caret``
(where the nearest says "nothing", a key still types where one of its glyphs' carets fits: a screen
no episode showed has far neighbours, and the nearest of them often typed nothing), ``loose_rms``
(where none fits within ``fit_rms``, within this: a text line at the other pixel phase) and
``typing_kind`` (a glyph where the nearest drew a glyph); folds +0.007 [-0.007, +0.021]
(docs/results/guiworld-delta, "Typing at any speed").

The patch was chosen on the val episodes (action effect 0.625 -> 0.681 at weight 40) and across three
folds of held-out training episodes (``ncomp experiment desktop-recall``, 577 cases: +0.010
[-0.019, +0.040], 150-frame rollouts -0.013 SSIM); docs/results/guiworld-delta.

The sequence key (``sequence_weight`` λ): a transition is also judged by the one stored before it in
its episode, against the step before the present one (the framebuffer two back and the input window
one back): the distance is ``d_t(i) + λ d_{t-1}(i-1)``. A single step's key is ambiguous (the same
thumbnail and pointer occur in many episodes, some just before a menu opened, some not); two
consecutive steps rarely are, so recall follows a training episode that went the way the present one
did, and one wrong recall is not repeated step after step: the next step's candidates must have a
predecessor like the (wrong) screen now shown *and* the input, and the input wins back. It needs no
state: the rollout hands both steps in (the previous step's distances are memoised, so the cost is
one comparison a step). An episode's first transition has no predecessor; its second term is the
median. Chosen across three folds of held-out training episodes (``ncomp experiment desktop-recall``,
577 cases; docs/results/guiworld-delta): rollout SSIM +0.037 [+0.003, +0.077] over 31 frames and +0.109
[+0.023, +0.207] over 150, action effect +0.017 [-0.014, +0.047].

Context menus (``anchored``): a right-click menu opens at the pointer (flipped above or left of it
near the screen's edge), wherever the click was; the training right-click that the key finds was
elsewhere. While the input window holds a right-click, a recalled change that answered a stored
right-click is placed for the present one: the menu itself as a toolkit places a popup (top-left
corner at the pointer, flipped left where it would cross the right edge; where it would cross the
bottom, flipped above the pointer if it stays below the top panel there (``WORKAREA_TOP``), else
shifted up to the bottom edge: a training menu opened near a corner was flipped or shifted, the
present one need not be), its highlighted items moved by the offset between the two presses; a
change over more than half the screen (a window) opens where it opens. For the same reason the
button weighs 10 in the key (it weighed 3, as the press place per grid cell does): a
right-click now finds the training right-clicks wherever they were, no longer a left click at the
same place (which opened nothing on most of the bare desktop). Across three folds of held-out
training episodes (579 cases, a fresh collection): anchoring +7 cases (every fold at or above the
fixed placement), the button's weight +10 more (every fold gains); docs/results/guiworld-delta.
``right_clicks`` (off) goes further: a right-click at most a step old recalls among the stored
right-clicks of its age only, so one on a screen training never right-clicked still opens a menu
(folds +0.002 [-0.004, +0.007]: 26 of 564 cases are right-clicks).

Navigation keys (``key_kinds``): an arrow, Home, End or Page key does one thing to a desktop (moves
a selection), and whether it does anything hangs on a focus the screen does not show (on the bare
desktop they select the Home icon in 22 of 39 presses). One key's few transitions make the nearest a
coin toss; with ``key_kinds`` the eight keys share one identity in the key, and while one was pressed
at most ``KIND_AGE`` steps ago, all stored navigation presses at the same age on the same screen vote
on whether the screen changes (the majority; the nearest changing one is replayed). Across three
folds of held-out training episodes (579 cases, a fresh collection): action effect +0.022 [+0.010,
+0.038], rollouts -0.001 / +0.012; docs/results/guiworld-delta.

A word's first key (``letter_kinds``): what the first key of a word does to a screen hangs on the
focus, not on the letter: in a file manager's view it opens the type-ahead field, on the desktop it
clears the selected icon, whichever letter it is; the letters after it change only the text. The
present letter's own transitions on such a screen are few or none, and the nearest says "nothing" or
types a glyph at whatever looks like a caret. With ``letter_kinds``, at the press step of a word's
first printable key (no modifier, the first key of the input window), the stored first keys of any
letter at their press step on the ``LETTER_VOTERS`` nearest screens vote: where at least half of them
made a change larger than a glyph, the nearest such change whose "before" the screen shows where it
goes (``follow``) is replayed; else the key types as before. Asked only where the key's nearest
transition typed nothing: a key whose nearest typed (a terminal's prompt, a dialog's selected name)
types as before. Across three folds of held-out training episodes (549 cases): +5 cases; val equal
(docs/results/guiworld-delta).

Where the input acts (``thumb_far``, ``thumb_near``, ``near_blocks``): a desktop's screens are many
arrangements of a few windows, and later in an episode the whole screen rarely matches any training
one; what a click does hangs on what is under and around it. Each thumbnail block weighs
``thumb_far``, those within ``near_blocks`` blocks of the press (else the pointer) ``thumb_far +
thumb_near`` (1 and 0: the whole screen alike, as memories before it were compared).

The fit check (``fit_tolerance``, ``neighbours``): a change recalled for a screen unlike its own
(another window where a menu of the training episode opened) pastes a fragment of that episode's
screen over this one, and a rollout carries the debris on. Of the ``neighbours`` nearest, the first
whose stored screen under its change's box looks as the present one does there (thumbnail blocks
within ``fit_tolerance`` levels) is replayed; a nearest "nothing changed" or no fitting one, nothing.
A menu placed at the present right-click (``anchored``) is not checked: no stored screen was there.

Following what a change changes (``follow``): a menu or a window is rarely where training saw it (a
context menu opens at the pointer; a menu flipped or shifted at an edge moves its items too), and its
items are where they are relative to it. A change up to ``KEEP_BEFORE`` keeps the pixels its box
showed before it (an item before its highlight, a menu before it closed); with ``follow``, a change
larger than a glyph whose "before" the present screen does not show where it is placed goes to the
nearest place within ``follow`` px that does (RMS of 3x3 means within ``follow_rms``: a menu opened at
another pixel phase of the collector's screen resamples its items), unasked by the thumbnail fit check;
where none does or two apart do, that check decides as before. (Rejecting a change whose "before" is
nowhere, or a highlight moved off the pointer, cost the scripted episodes' 150-frame rollouts dearly:
a highlight comes a step or two behind a pointer sweeping over a menu.) With ``follow_typed`` (off)
a key's own larger change goes where its "before" shows anywhere on the screen (the first key over a
selected field, in a dialog centred wherever its window is): val +2 of 72, folds equal, but at the
browser it pasted another window's fragment over a terminal (docs/results/guiworld-delta).

A hover at a new place (``hover``, ``hover_rms``, ``hover_far``): a context menu opens wherever the user
right-clicks, and where no training menu was, the nearest transitions of a pointer gliding over it are far
(key distances of 4,000-7,000 against a few hundred on screens training showed) and say "nothing": no item
lit. Where the recall draws nothing, the nearest is at least ``hover_far`` away and the pointer moved, the
stored hovers (an item newly lit in the theme's selection colour, the stored pointer on it or an item
away) are looked for around the pointer; of those whose unlit item the present screen shows there (RMS
of 3x3 means within ``hover_rms``, one place), the one nearest by the patch under the pointer lights it,
as a recolouring of the present pixels (each takes the colour that pixels of the nearest stored colour
became: the item keeps its own text), and the item lit before in the same columns is unlit as the
latest earlier frame of the rollout showed it (``past``). Folds equal (377 of 564 cases), val +1 of 74,
desktop-eval +2 of 71; at the browser a menu opened anywhere lights the items the pointer crosses
(docs/results/guiworld-delta, "A hover at a new place").

What was clicked (``press_patch``): a menu item's window opens steps after its click, when the menu
has closed and the screen under the press is the desktop any click there shows. With ``press_patch``
(a weight, as ``patch_weight``) a press a step old or older is also keyed by the patch under it as the
frame showed it when the press came (the rollout hands the frames before the present one in:
``past``), beside the patch there now.

These three and the key count were chosen together on three folds of held-out training episodes
(564 cases; docs/results/guiworld-delta, "Where the input acts"): together 371 -> 384 cases, every
fold gaining; the near blocks alone +9. The fit check cost two cases and lifted the 150-frame
rollouts by 0.022 [+0.001, +0.059] before the key count, and moves nothing on the folds with it
(desktop-eval: 150-frame rollout 0.704 -> 0.767).

A menu opened with something else (``popup_parts``): a right-click on the desktop with an icon selected
clears the icon and opens the menu in one step, so their change is one box, larger than half the screen
and with no corner at the press, and the popup rule (``anchored``) replayed it where it was stored. With
``popup_parts`` the change's connected parts are looked at: the one with a corner at the stored press is
placed as a popup at the present one, and the rest stays where it was. Folds equal (it never fires
there); on val it brought the rollouts back above copy-first (31 / 150 frames 0.824 / 0.582 -> 0.871 /
0.726, copy-first 0.845 / 0.608; docs/results/guiworld-delta, "A menu opened with something else").

What a key closes (``shown_keys``): a key on a screen no episode showed (the nearest at least
``hover_far`` away: a menu open at a new place) finds as its nearest a screen without that menu, where
the key did nothing. With ``shown_keys``, a key at most ``KIND_AGE`` steps old on such a screen replays
the nearest of the ``SHOWN_KEYS`` changes the same key made as long ago whose "before" the screen shows
where it would be replayed or ``follow`` px away (:meth:`_followed`): Escape closes the menu open here.
(Letting any key's change through that way, or any step's, lit every item of a menu the pointer rested
on.) Folds 363 -> 369 of 549 cases (+0.011 [+0.004, +0.020], none lost, rollouts equal); val 52 -> 53
of 73 with the rollouts 0.871 / 0.726 -> 0.890 / 0.734.

A shortcut's own answer (``shortcuts``): a key's identity is 3 numbers against the thumbnail's 576, so the
nearest transition to ctrl+shift+v in a terminal was a file chooser's step (its change painted the whole
screen) and ctrl+n recalled what the nearest editor screen did next. With ``shortcuts`` (steps) a shortcut
that young, with no press after it, recalls among the stored transitions of the same shortcut at the same
age only. Folds 369 -> 383 of 549 (+0.026 [+0.011, +0.042]; 18 won, 4 lost), val 53 -> 55 of 73,
desktop-eval equal (docs/results/guiworld-delta, "A shortcut recalls what the same shortcut did").
``nothing_evidence`` (off: folds +0.004 [-0.004, +0.011], one fold rollout lost, one val rollout won) lets
a change past the nearest "nothing" through where no nearer "nothing" screen showed its "before".

A caret that blinked off (``blank_caret``, px): an editor's caret is off half the time, so the first
glyph typed into an empty document, or the next after a replay that drew no caret, has no caret to fit,
and the loose fit put it on a window's left edge or the screen's bottom. Where no glyph's caret fits
within ``fit_rms``, a glyph whose "before" shows a caret on a light page goes to the blank place (the
"before"'s background colour) nearest where training typed it, then left along its row to a pixel
clear of the line's last ink, or to the row's start. Not on a dark page: the terminal's block caret
does not blink here, and every black cell is blank (at the browser it scattered "echo hello" over the
rows below the prompt). Val 55 -> 57 of 73 (the two empty documents), folds 383 -> 384 of 549,
desktop-eval equal (docs/results/guiworld-delta, "A caret that blinked off").

A selected field's text (``typed_selection``): a key's own change larger than a glyph whose "before" is
selected text (its most frequent colour saturated, ``SELECTION_SPREAD``) goes where the screen shows that
"before", anywhere, as ``follow_typed`` moves every larger typed change (left off: it pasted a window's
fragment over a terminal whose rows matched). The first key replaces a dialog's selected name wherever
the dialog opened: val 57 -> 59 of 73, folds and desktop-eval's action effect equal
(docs/results/guiworld-delta, "A selected field's text replaced where the dialog is").

A Return answers with a new prompt line (``named_keys``, ``missed_change``, ``caret_rows``,
``moved_caret``, ``terminal_glyphs``): a key's identity is 3 numbers, and Return's lie near "7"'s, so in a terminal the
nearest to a Return was a "7" typed on a like screen: its glyph was drawn beside the prompt and the
next command typed on the same line. A named key (Return, Escape, Tab, BackSpace, Delete, an F-key) at
most ``named_keys`` steps old recalls among the same key's stored transitions of its age, as a shortcut
does. Training's terminal drew the new lines at the press step in one episode and a step later in
another: a stored "nothing" that came a step after its episode's change does not end the search where
this rollout changed nothing since the key (``missed_change``). The new lines came from another
command's Return, at the rows training's command was on: after a named key, a change that draws a
terminal's block caret moves up or down to the row of the block caret shown now (``caret_rows``; at the
page's last row the page scrolls up), and the present caret it does not cover is erased (``moved_caret``;
the stored mask cleared training's caret cell, not this one's). A terminal filled with commands is unlike
any stored screen, and a key's nearest change there was a file manager's menu: where one block caret
shows, a printable key draws a glyph only (``terminal_glyphs``). Each command then gets its (recalled)
output and a new prompt below it (docs/results/guiworld-delta, "A Return answers with a new prompt line").

A press's plan (``press_plan``, ``plan_votes``): what a click does comes steps after it (a window two to
six frames later, a menu item's window after the menu closed), when the step's own key has aged and its
nearest transitions are other screens' with a press as old, most of which changed nothing. After a
press, the stored presses are compared with the present one as it came (the rollout's framebuffer then,
``past``, and the input window that ended at it); the nearest one's episode, as many steps after its
press, gives the change, before the step's own recall ("first"), where more than half of the
``plan_votes`` nearest presses changed the screen then. Folds 390 -> 406 of 549, val rollouts 0.890 /
0.734 -> 0.962 / 0.947 (a menu item's terminal opens); the same for keys that type no glyph
(``key_plan``) lost 9 fold cases (docs/results/guiworld-delta, "A press's plan").

An icon clicked (``click_items``, ``item_rms``, ``unlit_items``): a left click on an icon selects it (the folder tinted,
the label a bar of the theme's selection colour with the name in white), and which icon is under a
random click in a file manager's view is rarely one any episode clicked there: the step's nearest
transition is another view's, and the plan replays that episode's aftermath (its own icon lit, a
window raised). At build time each stored left single click whose change has, within ``ITEM_REACH``
px of the press, a small part lit in a saturated colour (an icon's selection, :func:`_click_item`; the
memory's changes keep their "before" only up to ``KEEP_BEFORE``, and a file manager's selection comes
in one change with the status line) keeps that part's pixels before and after and the patch under the
press. At a fresh left single click, before the plan, the stored icons are looked for unlit around the
press (within ``item_rms``: another folder of the same look, another name); the place holding the
press (else the nearest) is lit as a recolouring of its own pixels, its label drawn as a selected
label (the name's own glyphs white on the bar), the icon selected before unselected as the rollout's
earlier frames showed it (with ``unlit_items``, one selected before them by the stored icons' colours),
and the steps after that click draw nothing (no newer input; found again
from the frame at the press, ``past``: no state). A click beside an icon selected already lights
nothing. Across three folds of held-out training episodes (549 cases): 411 -> 415 (+0.007 [+0.002,
+0.015]; 4 won, none lost; val and desktop-eval equal; docs/results/guiworld-delta, "An icon clicked").

Stored (``memory.npz``): thumbnails of the distinct framebuffers ``(U, 12, 16, 3)`` uint8, per
transition its thumbnail, input features ``(N, F)`` float16, the patch under its press ``(N, 32)``
uint8 (a memory saved without them compares no patch) and the patch under it as the screen was at the
press (a memory saved without them compares none), and change id (-1: none), the index of each
episode's first transition (a memory saved without it is one episode to the sequence key); the distinct
changes as boxes ``(M, 4)`` (y0, y1, x0, x1), bit-packed masks over each box and the new colours of
the masked pixels, uint8; for those up to ``KEEP_BEFORE`` also the pixels of the box before the change
(a memory saved without them recalls without moving changes; one saved with them for glyphs only
follows nothing larger); the icons clicks lit (``click_items``) as their boxes, patches and pixels
before and after (a memory saved without them lights none). Written as a zip with LZMA (:meth:`TransitionMemory.save`);
a memory written by ``np.savez_compressed`` loads the same.
"""

from __future__ import annotations

import functools
import hashlib
import io
import lzma
import zipfile
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from neuralcomputer.data.dataset import atomic_write_bytes
from neuralcomputer.data.desktop.actions import (
    MODIFIER_KEYS,
    SPECIAL_KEYS,
    FrameActions,
    canonical_key,
    key_slot,
)
from neuralcomputer.errors import NCError
from neuralcomputer.models.deskdelta import step_window

THUMB = (12, 16)  # thumbnail grid (rows, cols)
GRID = (24, 32)   # pointer coordinates are given in cells of this grid (rows, cols) of the screen
NO_EVENT_AGE = 20.0  # the "steps since" of an event that did not happen in the window
KEY_DIMS = 3
# input features: pointer now (x, y), pointer one step before (x, y), a button press present, its
# (x, y), age, button, released since (1/0); key age, key identity (KEY_DIMS); clicks; keys pressed
FEATURES = 4 + 6 + 1 + KEY_DIMS + 1 + 1
CLICK_STEPS = 3  # presses of one button this many steps apart or closer are one double (triple) click
SCROLL_BUTTON = 9  # the "button" of a wheel event (real buttons are 1-3)
RIGHT_BUTTON = 3  # X's right button: its press opens a context menu at the pointer (``anchored``)
POPUP_PX = 2  # px: a change with an edge this close to its right-click, across and down, is the popup itself
# the top of the work area, as a fraction of the frame's height: the desktop's top panel and its border
# (29 rows of the collector's 384). A popup that would cross the bottom opens above the pointer only
# where it stays below it: the stored right-click menus at 256x192 flipped with 14 px of room above and
# more, shifted up with 13 or less
WORKAREA_TOP = 29 / 384
PATCH = (16, 32)  # px (rows, cols) at the model's frame size: what is under the pointer, as the key sees it
PATCH_GRID = (4, 8)  # ... reduced to these block means of its grey levels (32 numbers)
SMALL = 16  # px: a change this small or smaller a side is a glyph's size (typing)
# px (rows, cols): a change this small or smaller keeps what its box showed before it (a glyph's caret, a
# menu item before its highlight: where the present screen shows it, the change is placed; ``follow``)
KEEP_BEFORE = (192, 128)
FOLLOW_SPREAD = 3  # px: the places a followed change fits must lie this close to one another (``follow``)
KEY_CODE = slice(11, 11 + KEY_DIMS)  # where input_features keeps the latest key press's identity
CLICKS = 11 + KEY_DIMS  # ... and how many presses the latest click is (1, 2: a double click)
KEYS = CLICKS + 1  # ... and how many keys were pressed in the window (the first of a typed word: 1)
KEY_RUN = 3  # ... counted up to this many
CHORD_MODIFIERS = ("ctrl", "alt", "super")  # held under a key, they make it a shortcut (its own identity)
CHORD_SEED = 1000  # a chord's identity is seeded past every key slot's

DEFAULTS: dict[str, Any] = {
    "history": 8,
    "thumb_weight": 20.0,
    # pointer now/before, press present, press x/y, press age, button, released, key age, key identity, clicks,
    # keys pressed
    "input_weights": [1.0, 1.0, 1.0, 1.0, 6.0, 3.0, 3.0, 20.0, 10.0, 3.0, 20.0, 10.0, 10.0, 10.0, 10.0, 10.0],
    "neighbours": 8,         # how many nearest transitions the fit check may try (1: the nearest, no check)
    "fit_tolerance": 24.0,   # 8-bit levels; None: replay the nearest change wherever it lands
    "typing": True,          # a printable key: replay its own nearest change, a small one moved to fit
    "typing_candidates": 1,  # ... the first of this many nearest changes of the key that fits somewhere
    "typing_once": False,    # ... once: the steps after the one that drew its glyph change nothing (_typed)
    "typing_early": False,   # ... drawn at its press step if the step after would draw it (_late_glyph)
    "lowest_caret": False,   # ... at the lowest place its "before" (a caret) fits, not the nearest to its own
    "typing_kind": False,    # ... a glyph where the nearest drew a glyph, a larger change where it drew one
    "typing_caret": False,   # ... at its press step wherever one of its glyphs' carets fits, if the nearest says nothing
    "caret_first": False,    # ... or whatever the nearest says (a solid caret shows where the focus is)
    "fit_rms": 12.0,         # 8-bit levels: how close a place must look to a small change's "before"
    # ... and where none of the candidates fits that close, this close (0: not tried): a text line at
    # another pixel phase (terminal rows are 9.5 px at 192) resamples a caret 20-30 levels apart
    "loose_rms": 0.0,
    "patch_weight": 40.0,    # weight of what is under the press (or pointer); 0: not part of the key
    # weight of what was under the press when it was pressed, beside what is there now (0: not compared;
    # a memory saved without those patches compares none). A menu item's click opens its window steps
    # after the menu closed: by then the screen under the press is the desktop that any click shows
    "press_patch": 0.0,
    "sequence_weight": 0.5,  # weight of how near each transition's predecessor is to the step before
    "anchored": True,        # a change answering a right-click moves with the present right-click
    # px: a change larger than a glyph whose "before" the present screen does not show where it is placed
    # goes to the closest place within this many px that does show it (within follow_rms); 0: it stays
    "follow": 0,
    # 8-bit levels (RMS, both pictures 3x3-averaged): how close a place must look to such a change's
    # "before", and no place farther than FOLLOW_SPREAD px from it as close. A menu opened at another pixel
    # phase of the collector's screen resamples its items 17-31 levels apart at the model's size (8-13
    # averaged), the next item 35-43 (17-28)
    "follow_rms": 20.0,
    # where the recall changes nothing on a screen training did not show and the pointer moved: a stored hover
    # (an item newly lit, at most HOVER_ROWS tall) whose unlit item the present screen shows around the pointer
    # lights it there (a menu opened where no training menu was still lights the item under the pointer)
    "hover": False,
    # 8-bit levels (RMS of 3x3 means): how close the place around the pointer must look to a hover's unlit item
    # (the same item at another pixel phase: 7-9; another item of the same menu, its rows aligned: 15-20). The
    # hover recolours the present pixels, so another item of the same look lights this one right
    "hover_rms": 20.0,
    # ... only where the nearest transition is at least this far (key units): a screen training did not show
    # (on the screens it showed, the nearest says when a highlight comes, a step behind the pointer)
    "hover_far": 2000.0,
    # a key at most KIND_AGE steps old where the nearest is at least hover_far away: of the SHOWN_KEYS nearest
    # changes the same key made as long ago, the first whose "before" the screen shows is replayed (Escape
    # closes the menu that is open here, wherever training's was)
    "shown_keys": False,
    "follow_typed": False,   # ... and a key's own larger change too (typing), the next candidate where not found
    "popup_parts": False,    # ... a menu that opened in one change with something else is placed alone
    "popup_flip": True,      # ... a popup with no room below opens above it (False: shifted up to the edge)
    "right_clicks": False,   # a right-click at most a step old recalls among stored right-clicks of its age only
    # steps: a shortcut (a key with ctrl, alt or super held) at most this old, with no press after it, recalls
    # among the stored transitions of the same shortcut at the same age only (0: off). Its key's few numbers
    # weigh less than a screen's: the nearest of all is another key on a like screen (ctrl+shift+v in a
    # terminal recalled a file chooser's step), the nearest of its own the same command's effect
    "shortcuts": 0,
    # steps: the same for a named key that types no glyph and moves no selection (Return, Escape, Tab,
    # BackSpace, Delete, F-keys): Return's 3 numbers lie near "7"'s, so in a terminal the nearest to a
    # Return was a "7" typed there (its glyph drawn beside the prompt) and the new prompt line lost (0: off)
    "named_keys": 0,
    # a stored "nothing" whose episode changed the screen the step before, where this rollout changed nothing
    # since the latest key or press, does not end the search: training's Return drew the new prompt line at
    # its press step in one episode, a step later in another, and the rollout that followed the second found
    # the first's "nothing" a step later
    "missed_change": False,
    # after a named key, a replayed change that draws a terminal's block caret below its box's top row (the
    # caret cell it clears) goes up or down to the row of the block caret shown now: a Return's new prompt
    # line below the present command, not below the row training's command was on (it wrote over the
    # commands typed since)
    "caret_rows": False,
    # after a key that types no glyph (Return, a shortcut), a replayed change that draws a terminal's block
    # caret erases the other block carets the present screen shows in its box (a Return's new prompt line
    # came from another command's line: its mask cleared that line's caret cell, not this one's, and two
    # carets were left). A glyph's change places its own caret; a stray one erased the live one
    "moved_caret": False,
    # where the screen shows one terminal block caret, a printable key's own change is a glyph (its larger
    # ones are left out): on a terminal filled with commands, unlike any stored screen, the nearest "c" was
    # typed into a file manager and its menu opened over the prompt
    "terminal_glyphs": False,
    # a button press's consequence (a window opening, a menu, a selected icon cleared) comes steps after the
    # press, when the input window has aged and the nearest transitions of that age are other screens' (most
    # changed nothing): with "first" the stored presses are compared with the present one as it was when it
    # came (its framebuffer, ``past``, and its input window), and the nearest one's episode as many steps after
    # its press says what changes, before the step's own nearest does; "nothing": only where that changes
    # nothing; "": off
    "press_plan": "",
    "plan_votes": 1,  # ... of this many nearest stored presses, more than half changed the screen at that age
    "key_plan": "",   # ... the same for a key that types no glyph (Return, Escape, a shortcut)
    "key_kinds": True,       # navigation keys share one identity, and their pooled rate decides (below)
    # a word's first printable key at its press step: the stored first keys (any glyph) on the nearest
    # screens vote on whether a change larger than a glyph comes (a type-ahead field, a selection cleared)
    "letter_kinds": False,
    # where the nearest changed nothing, a change that fits among the neighbours within this much more
    # distance (a fraction: 0.3 = 30%) is replayed instead; 0: the nearest "nothing" ends the search
    "change_bias": 0.0,
    # where the nearest changed nothing, a change among the neighbours that fits the present screen is replayed
    # when that nearest "nothing" screen did not show what the change's box showed before it (its "nothing" says
    # nothing about this change: the desktop icon it would clear was not selected there)
    "nothing_evidence": False,
    # px: where no typed glyph's caret fits within fit_rms, a glyph whose "before" shows a caret on a light page
    # goes to the place nearest its stored one, within this many px, where the screen is blank in the "before"'s
    # background colour (its caret blinked off: an empty document shows none half the time, and a loose fit
    # lands on a window's edge); tried before loose_rms; 0: not tried
    "blank_caret": 0,
    # a key's own change larger than a glyph whose "before" is selected text (_selection: a dialog's name field
    # that the first key replaces) goes where the screen shows that "before", as with follow_typed for every
    # larger change (which pasted a window's fragment over a terminal whose rows the "before" matched)
    "typed_selection": False,
    # a fresh left single click on an icon lights it as a stored click lit an icon of the same look (_clicked_item):
    # the memory keeps each stored click's lit icon (_click_item), and the steps after the click draw nothing more
    "click_items": False,
    "item_rms": 30.0,  # 8-bit levels (RMS): how close the screen at the press must look to a stored icon unlit
    # ... and an icon selected since before the rollout's kept frames is unselected by the stored icon's colours
    "unlit_items": False,
    # the thumbnail's blocks weigh thumb_far, those within near_blocks of the press (else the pointer)
    # thumb_far + thumb_near: the screen where the input acts counts more than the rest (1, 0: uniform)
    "thumb_far": 0.5,
    "thumb_near": 2.0,
    "near_blocks": 3.0,
}
# a glyph's "before" with less spread than this (8-bit levels) shows no caret (it blinked off): it fits any
# blank place alike, so ``lowest_caret`` does not move it to the lowest one
CARET_STD = 20.0
# a terminal's block caret (:func:`_block_carets`): light (each channel at least this, 8-bit), filling at
# least this much of its box, rows and cols (px at 192 rows: a text cell) in these ranges, on a page whose
# ring around it is darker than this (grey, 8-bit)
BLOCK_LIGHT, BLOCK_FILL, BLOCK_ROWS, BLOCK_COLS, BLOCK_PAGE = 150, 0.85, (6, 14), (3, 10), 60.0
SELECTION_SPREAD = 96  # 8-bit levels between a colour's channels: saturated, as a selection's blue (53, 132, 228)
# Keys of one kind do the same to a screen (move a selection); with ``key_kinds`` they are one key
NAVIGATION_KEYS = ("Up", "Down", "Left", "Right", "Home", "End", "Page_Up", "Page_Down")
# Keys that type no glyph and move no selection: each does its own thing (``named_keys``)
NAMED_KEYS = tuple(k for k in SPECIAL_KEYS if k != "space" and k not in NAVIGATION_KEYS)
KIND_AGE = 2        # steps: the pooled rate decides while the navigation key is at most this old
KIND_SCREEN = 50.0  # the same screen for the pooled rate: thumbnail distance below this (key units)
KIND_VOTES = 3      # ... and at least this many such transitions
LETTER_VOTERS = 7   # letter_kinds: the stored first keys on this many nearest screens vote
HOVER_ROWS = 20        # px: a stored hover lights at most this many rows (one item)
HOVER_PAST = 30        # steps back a lit item's unlit pixels are looked for in the rollout's own frames
HOVER_REACH = 64       # px: rows above and below a hover where another lit item of its menu is unlit
HIGHLIGHT_SATURATION = 60  # 8-bit levels: a highlight's colour spans this much across its channels
BAR_GAP = 6            # rows: lit rows this close are one lit bar (its text rows between them)
LUT_DISTANCE = 20.0    # 8-bit levels: a pixel is recoloured as the nearest stored colour this close became
HOVER_MARGIN = 2       # px: the pointer this far inside a hover's box, top and bottom
HOVER_KEY_PX = 64      # px: a stored hover is found by its top-left corner this wide (an icon, a label's start)
ITEM_REACH = 8         # px: an icon lit by a click lies this close to the press (its part nearest the press)
ITEM_SIDE = (3, 48)    # px: ... and is at least / at most this many px a side (a margin of 1 px included)
ITEM_LIT = 0.5         # ... at least this much of its box lit (saturated, HIGHLIGHT_SATURATION) after the click
ITEM_GAIN = 0.2        # ... and this much more than before it (a window's blue title bar is lit before and after)
ITEM_CANDIDATES = 64   # stored icons tried at a click, nearest by the patch under the press first
ITEM_HOLD = 8          # steps after a click that lit an icon: nothing more changes (no window opens, no plan)
LABEL_ROWS = 0.3       # an icon's label: its lowest run of rows at least this much of the lit colour
LABEL_GAP = 8          # rows: ... runs this close are one label (its text rows between them)
LIGHT_PAGE = 200       # 8-bit grey: a label on a page this light has dark glyphs (drawn white when selected)
PLAN_MODES = ("", "first", "nothing")  # press_plan, key_plan: off, before the step's nearest, where it changes nothing
PLAN_EVENTS = ("press", "key")  # the inputs a plan answers: {event}_plan is its setting
# queries whose distances are kept: a step's own, the step before's (the sequence key's), one more (a press's
# plan or a late glyph's), so a rollout computes each step's distances once
MEMO = 3
PLAN_CACHE = 64        # presses whose nearest stored presses ``press_plan`` keeps (a rollout's recent ones)
SHOWN_KEYS = 16        # how many of a key's stored changes ``shown_keys`` looks at
HOVER_COARSE = 10.0    # 8-bit levels: a hover is searched in full where its coarse search came this near its tolerance
# ``past(k)``: the framebuffer ``(H, W, 3)`` uint8 ``k`` >= 1 steps before the present one, None if not kept
Past = Callable[[int], np.ndarray | None]
_BLOCK_ROWS, _BLOCK_COLS = np.mgrid[0:THUMB[0], 0:THUMB[1]]  # (12, 16) each: a thumbnail block's row, column


def _printable(key: str) -> bool:
    """Whether pressing ``key`` types a glyph (a character or the space bar; not Return or a modifier)."""
    return len(key) == 1 or key == "space"


def _named(key: tuple[int, str, int]) -> bool:
    """Whether ``key`` (:func:`_latest_key`) is a named key alone (:data:`NAMED_KEYS`)."""
    return not key[2] and canonical_key(key[1]) in NAMED_KEYS


def _is_navigation(features: np.ndarray) -> np.ndarray:
    """``(N,)`` bool: which rows of input features ``(N, FEATURES)`` have a navigation key as their
    latest key (compared as the stored float16 identities)."""
    return _latest_key_in(features, _navigation_codes())


def _is_first_letter(features: np.ndarray) -> np.ndarray:
    """``(N,)`` bool: which rows of input features ``(N, FEATURES)`` have a word's first printable key
    (no modifier under it, the first key of the window) as their latest key."""
    return _latest_key_in(features, _printable_codes()) & (features[:, KEYS] == 1)


def _latest_key_in(features: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """``(N,)`` bool: which rows of input features ``(N, FEATURES)`` have a latest key whose identity is
    one of ``codes`` ``(K, KEY_DIMS)`` (compared as the stored float16 identities)."""
    return np.isin(_code_keys(features[:, KEY_CODE]), _code_keys(codes)) & (features[:, 10] < NO_EVENT_AGE)


def _code_keys(codes: np.ndarray) -> np.ndarray:
    """``(N,)`` uint64: key identities ``(N, KEY_DIMS)`` as stored (float16), each packed into one number
    (their 16 bits side by side: KEY_DIMS <= 4), so identities compare as numbers."""
    bits = np.ascontiguousarray(codes.astype(np.float16)).view(np.uint16).astype(np.uint64)
    return (bits << (16 * np.arange(KEY_DIMS, dtype=np.uint64))).sum(1, dtype=np.uint64)


@functools.cache
def _printable_codes() -> np.ndarray:
    """``(95, KEY_DIMS)`` float16: the printable keys' identities (no modifier) as a memory stores them."""
    keys = [chr(c) for c in range(33, 127)] + ["space"]
    codes = np.stack([_key_code(k) for k in keys]).astype(np.float16)
    codes.flags.writeable = False
    return codes


@functools.cache
def _navigation_codes() -> np.ndarray:
    """``(8, KEY_DIMS)`` float16: the navigation keys' identities as a memory stores them."""
    codes = np.stack([_key_code(k) for k in NAVIGATION_KEYS]).astype(np.float16)
    codes.flags.writeable = False
    return codes


@functools.cache
def _key_code(key: str, chord: int = 0) -> np.ndarray:
    """A fixed random direction per key slot (the same on every machine: seeded by the slot), another
    per chord of it (``chord``: the :func:`_chord` of the modifiers held; 0, none, is the key's own).
    Cached (read-only): every recall asks for a few, and seeding a generator is the slow part."""
    code = np.random.default_rng(1000 + key_slot(key) + CHORD_SEED * chord).normal(size=KEY_DIMS).astype(np.float32)
    code.flags.writeable = False
    return code


def _chord(held: set[str]) -> int:
    """The modifiers held under a key, as bits (ctrl 1, alt 2, super 4; shift 8 only beside one of
    those): ctrl+v pastes and ctrl+alt+d hides the windows, where v and d type; shift+h types H."""
    bits = sum(1 << i for i, m in enumerate(CHORD_MODIFIERS) if m in held)
    return bits | (8 if bits and "shift" in held else 0)


def input_features(steps: Sequence[FrameActions], screen: tuple[int, int]) -> np.ndarray:
    """``(FEATURES,)`` float32: the recent input as the memory compares it (see the module docstring).

    ``steps`` are the step actions of the window, oldest first, the last one leading into the new
    frame (:func:`~neuralcomputer.models.deskdelta.step_window`); ``screen`` is (width, height) of the
    pointer's coordinates.
    """
    sw, sh = screen
    scale = np.array([GRID[1] / sw, GRID[0] / sh], np.float32)
    f = np.zeros(FEATURES, np.float32)
    now = np.asarray(steps[-1].pointer, np.float32) * scale
    before = np.asarray(steps[-2].pointer if len(steps) > 1 else steps[-1].pointer, np.float32) * scale
    f[0:2], f[2:4] = now, before
    press: tuple | None = None  # the newest button press or wheel notch: (age, where, button, released)
    key = _latest_key(steps)
    released: set[int] = set()  # buttons let go after the events scanned so far (newest first)
    for age, step in enumerate(reversed(steps)):
        where, pointer = [], None  # the pointer at each event of the step
        for e in step.events:
            if e["type"] == "move":
                pointer = (e["x"], e["y"])
            where.append(pointer or step.pointer)
        for e, at in zip(reversed(step.events), reversed(where), strict=True):
            kind = e["type"]
            if kind == "up":
                released.add(e["button"])
            elif kind in ("down", "scroll") and press is None:
                # a press and its release are one click whether they come in one step (an interactive
                # click) or two (the collector's): the press's age and whether it was let go since
                button = SCROLL_BUTTON if kind == "scroll" else e["button"]
                press = (age, at, button, kind == "scroll" or button in released)
    if press is not None:
        f[4] = 1.0
        f[5:7] = np.asarray(press[1], np.float32) * scale
        f[7], f[8], f[9] = press[0], press[2], float(press[3])
        # a double click is two presses of one button within a few steps (the collector spreads them,
        # an interactive one may send both in one step): on a title bar or an icon it does what one
        # click does not (maximise, open), and the latest press alone cannot tell them apart
        newest = len(steps) - 1 - press[0]
        f[CLICKS] = sum(e["type"] == "down" and e["button"] == press[2]
                        for step in steps[max(0, newest - CLICK_STEPS):newest + 1] for e in step.events)
    else:
        f[7] = NO_EVENT_AGE
    if key is not None:
        f[10], f[KEY_CODE] = key[0], _key_code(key[1], key[2])
        # the first key of a typed word is what clears a selected icon or opens a type-ahead search;
        # the letters after it change only the text
        f[KEYS] = min(KEY_RUN, sum(e["type"] == "key_down" and canonical_key(e["key"]) not in MODIFIER_KEYS
                                   for step in steps for e in step.events))
    else:
        f[10] = NO_EVENT_AGE
    return f


def _latest_key(steps: Sequence[FrameActions]) -> tuple[int, str, int] | None:
    """The newest key press of the window ``steps`` (oldest first): (steps ago, key, :func:`_chord` of
    the modifiers held under it; a modifier's own press is no chord), None without one."""
    key, held = None, set()
    for age, step in zip(range(len(steps) - 1, -1, -1), steps, strict=True):
        for e in step.events:
            if e["type"] not in ("key_down", "key_up"):
                continue
            name = canonical_key(e["key"])
            if e["type"] == "key_down":
                key = (age, e["key"], 0 if name in MODIFIER_KEYS else _chord(held))
                held.add(name)
            else:
                held.discard(name)
    return key


def anchor(features: np.ndarray, size: tuple[int, int]) -> tuple[int, int]:
    """Where the input points, in pixels ``(row, col)`` of a framebuffer of ``size`` (H, W): the latest
    button press of the window when there is one, else the pointer now (``features`` from
    :func:`input_features`)."""
    return _grid_px(features[5:7] if features[4] > 0 else features[0:2], size)


def _pointer_px(features: np.ndarray, size: tuple[int, int]) -> tuple[int, int]:
    """The pointer now, in pixels ``(row, col)`` of a framebuffer of ``size`` (H, W) (``features`` from
    :func:`input_features`)."""
    return _grid_px(features[0:2], size)


def _grid_px(xy: np.ndarray, size: tuple[int, int]) -> tuple[int, int]:
    """Grid coordinates ``(x, y)`` (``GRID`` cells) -> pixels ``(row, col)`` of a framebuffer of ``size``."""
    gx, gy = xy.astype(np.float64)
    h, w = size
    return (int(np.clip(round(gy * h / GRID[0]), 0, h - 1)), int(np.clip(round(gx * w / GRID[1]), 0, w - 1)))


def pointer_patch(framebuffer: np.ndarray, at: tuple[int, int]) -> np.ndarray:
    """``(32,)`` uint8: grey block means of the ``PATCH`` around pixel ``at`` (row, col) of ``framebuffer``
    ``(H, W, 3)`` uint8, edge pixels repeated beyond the frame: the menu item, button or taskbar entry a
    click lands on, wherever on the screen it is."""
    ph, pw = PATCH
    padded = np.pad(framebuffer, ((ph // 2, ph // 2), (pw // 2, pw // 2), (0, 0)), mode="edge")
    y, x = at
    grey = padded[y:y + ph, x:x + pw].astype(np.float32).mean(-1)  # (ph, pw): `at` is its centre
    gh, gw = PATCH_GRID
    return grey.reshape(gh, ph // gh, gw, pw // gw).mean((1, 3)).round().astype(np.uint8).reshape(-1)


def thumbnail(framebuffer: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` uint8 -> ``(12, 16, 3)`` uint8 block means (H and W divisible by the grid)."""
    h, w = framebuffer.shape[:2]
    gh, gw = THUMB
    if h % gh or w % gw:
        raise NCError(f"transition memory: frame size {w}x{h} is not divisible by its {gw}x{gh} thumbnail grid")
    blocks = framebuffer.reshape(gh, h // gh, gw, w // gw, 3).astype(np.float32).mean((1, 3))
    return blocks.round().astype(np.uint8)


@dataclass
class Change:
    """A recalled change: the box ``(y0, y1, x0, x1)``, which of its pixels change ``(h, w)`` bool and
    their new colours ``(n, 3)`` uint8 (row-major order of the mask)."""

    box: tuple[int, int, int, int]
    mask: np.ndarray
    colours: np.ndarray

    def apply(self, framebuffer: np.ndarray) -> np.ndarray:
        """A copy of ``framebuffer`` ``(H, W, 3)`` uint8 with the change pasted in."""
        y0, y1, x0, x1 = self.box
        out = framebuffer.copy()
        out[y0:y1, x0:x1][self.mask] = self.colours
        return out


class TransitionMemory:
    """The stored transitions and their nearest-neighbour recall (see the module docstring)."""

    def __init__(self, arrays: dict[str, np.ndarray], config: dict[str, Any]) -> None:
        self.config = {**DEFAULTS, **config}
        self.arrays = arrays
        self.history = int(self.config["history"])
        self.thumbs = arrays["thumbs"].reshape(len(arrays["thumbs"]), -1).astype(np.float32) / 255 * float(
            self.config["thumb_weight"])  # (U, 576)
        self.thumbs_2 = self.thumbs ** 2  # (U, 576): block-weighted distances expand over it (_near_weights)
        self.thumb_sq = self.thumbs_2.sum(1)
        weights = np.asarray(self.config["input_weights"], np.float32)
        if CLICKS <= weights.size < FEATURES:  # settings pinned before the click or key count: their defaults
            weights = np.append(weights, DEFAULTS["input_weights"][weights.size:]).astype(np.float32)
            self.config["input_weights"] = weights.tolist()
        if weights.shape != (FEATURES,):
            raise NCError(f"transition memory: input_weights has {weights.size} numbers, expected {FEATURES}")
        self.weights = weights
        for event in PLAN_EVENTS:
            if self.config[f"{event}_plan"] not in PLAN_MODES:
                raise NCError(f"transition memory: {event}_plan is {self.config[f'{event}_plan']!r}, expected one "
                              f"of {', '.join(map(repr, PLAN_MODES))}")
        inputs = arrays["inputs"]
        if inputs.shape[1] == CLICKS:  # saved before the click count: every stored press one click
            inputs = np.concatenate([inputs, inputs[:, 4:5]], axis=1)
        if inputs.shape[1] == KEYS:  # saved before the key count: every stored key the first
            inputs = np.concatenate([inputs, (inputs[:, 10:11] < NO_EVENT_AGE).astype(inputs.dtype)], axis=1)
        self._kinds = bool(self.config["key_kinds"])
        if self._kinds:  # every navigation key's stored identity becomes the kind's (the first key's)
            self._navigation = _is_navigation(inputs)  # (N,) bool
            inputs = inputs.copy()
            inputs[self._navigation, KEY_CODE] = _key_code(NAVIGATION_KEYS[0]).astype(np.float16)
        # letter_kinds' voters: the stored transitions at a word's first printable key's press step
        self._letter_voters: np.ndarray | None = np.flatnonzero(_is_first_letter(inputs) & (inputs[:, 10] == 0)) \
            if self.config["letter_kinds"] else None
        self.inputs = inputs.astype(np.float32) * weights  # (N, F)
        self.input_sq = (self.inputs ** 2).sum(1)
        self.thumb_of, self.change_of = arrays["thumb_of"], arrays["change_of"]
        # what is under the press or pointer (a memory saved without it, or a weight of 0: not compared)
        self.patch_weight = float(self.config["patch_weight"]) if "patches" in arrays else 0.0
        self._press_patch = float(self.config["press_patch"]) if "press_patches" in arrays else 0.0
        if self._press_patch:
            self.press_patches = arrays["press_patches"].astype(np.float32) / 255 * self._press_patch  # (N, 32)
            self.press_patch_sq = (self.press_patches ** 2).sum(1)
        if self.patch_weight:
            self.patches = arrays["patches"].astype(np.float32) / 255 * self.patch_weight  # (N, 32)
            self.patch_sq = (self.patches ** 2).sum(1)
        # per transition: whether it changes the screen (None: typing is off, or the memory was saved
        # without the "before" pixels that moving a change needs)
        self._changes = (self.change_of >= 0) if self.config.get("typing", True) and "befores" in arrays else None
        self.sequence_weight = float(self.config["sequence_weight"])
        self.starts = arrays["starts"] if "starts" in arrays else np.zeros(1, np.int64)
        # (N,) bool: transition i - 1 of the same episode changed the screen (a "nothing" after a change)
        self._after_change = np.zeros(len(self.change_of), bool)
        self._after_change[1:] = self.change_of[:-1] >= 0
        self._after_change[self.starts] = False
        self._ends = np.append(self.starts[1:], len(self.change_of))  # (episodes,) each episode's end (exclusive)
        self._memo: list[tuple[bytes, np.ndarray]] = []  # the latest MEMO queries and their distances
        self._spread: np.ndarray | None = None  # per change, its "before"'s spread (:meth:`_shows_caret`)
        self._right_cache: dict[int, np.ndarray] = {}  # press age -> stored right-clicks of that age
        self._key_cache: dict[str, np.ndarray] = {}  # key -> its stored transitions that change the screen
        # (key identity, age) -> the transitions of that latest key at that age, as a mask and as the indices
        # of those that changed the screen (_keyed)
        self._key_age_cache: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}
        self._plans: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}  # press -> its nearest stored presses (_planned)
        self._page_cache: dict[int, np.ndarray] = {}  # change id -> its "before"'s most frequent colour (_page)
        self._hovers: list | None = None  # the stored hovers (_hover_items), found on the first need
        self._item_pixels: list | None = None  # click_items' icons and their colours (_items), on the first need
        self._item_patches = np.zeros((0, PATCH_GRID[0] * PATCH_GRID[1]), np.float32)  # ... under their presses
        self._item_cache: dict[bytes, Change | None] = {}  # a click's screen and place -> its lit icon
        self._hover_sizes = np.zeros((0, 2), np.int64)  # ... their (h, w) (_hover_items)
        self._hover_patches = np.zeros((0, PATCH_GRID[0] * PATCH_GRID[1]), np.float32)  # ... under their pointers
        self._hover_kernels: Any = None  # ... their top-left corners as 3x3 means, a tensor (_hover_items)
        sides = arrays["boxes"].astype(np.int64)
        self._glyph_sized = (sides[:, 1] - sides[:, 0] <= SMALL) & (sides[:, 3] - sides[:, 2] <= SMALL)  # (M,)

    @property
    def _follow_px(self) -> int:
        """``follow`` (px), 0 for a memory saved without "befores" (read per step, as the other settings)."""
        return int(self.config["follow"]) if "befores" in self.arrays else 0

    def _kept_before(self, cid: int) -> bool:
        """Whether stored change ``cid`` kept the pixels of its box before it (up to ``KEEP_BEFORE``)."""
        offsets = self.arrays["before_offsets"]
        return bool(offsets[cid + 1] > offsets[cid])

    def _before(self, cid: int) -> np.ndarray:
        """The pixels of stored change ``cid``'s box before it, ``(h, w, 3)`` uint8 (asked only where
        :meth:`_kept_before`)."""
        a = self.arrays
        y0, y1, x0, x1 = (int(v) for v in a["boxes"][cid])
        return a["befores"][a["before_offsets"][cid]:a["before_offsets"][cid + 1]].reshape(y1 - y0, x1 - x0, 3)

    def _page(self, cid: int) -> np.ndarray:
        """The most frequent colour of stored change ``cid``'s "before" ``(3,)`` uint8 (its page, or a
        selection's bar), found once per change."""
        if cid not in self._page_cache:
            self._page_cache[cid] = _mode_colour(self._before(cid).reshape(-1, 3))
        return self._page_cache[cid]

    def __len__(self) -> int:
        return len(self.change_of)

    @property
    def settings(self) -> dict[str, Any]:
        """The recall settings, without the pipeline's ``mode`` (how its frames use the recall): what a
        memory rebuilt from other episodes, or the same memory with a setting changed, is read with."""
        return {k: v for k, v in self.config.items() if k != "mode"}

    @property
    def changes(self) -> int:
        """How many distinct changes are stored."""
        return len(self.arrays["boxes"])

    @classmethod
    def build(cls, episodes: Iterable[tuple[np.ndarray, np.ndarray, Sequence[FrameActions]]],
              screen: tuple[int, int], config: dict[str, Any] | None = None) -> TransitionMemory:
        """Store every transition of ``episodes``: each ``(framebuffers (U, H, W, 3) uint8, index (T,)
        int, actions (T records))`` as DeskDelta's training reads them (distinct framebuffers and
        which one each frame shows)."""
        config = {**DEFAULTS, **(config or {})}
        thumbs: list[np.ndarray] = []
        thumb_ids: dict[bytes, int] = {}
        thumb_of, inputs, change_of, patches, press_patches = [], [], [], [], []
        boxes, masks, colours, befores = [], [], [], []
        change_ids: dict[bytes, int] = {}
        items: dict[bytes, tuple[tuple[int, int, int, int], np.ndarray, np.ndarray, np.ndarray]] = {}  # click_items
        starts = []
        for framebuffers, index, actions in episodes:
            starts.append(len(thumb_of))
            local = []  # this episode's framebuffer -> thumbnail id
            for fb in framebuffers:
                t = thumbnail(fb)
                local.append(thumb_ids.setdefault(t.tobytes(), len(thumb_ids)))
                if local[-1] == len(thumbs):
                    thumbs.append(t)
            for t in range(1, len(index)):
                a, b = int(index[t - 1]), int(index[t])
                thumb_of.append(local[a])
                inputs.append(input_features(step_window(list(actions), t, config["history"]), screen))
                at = anchor(inputs[-1], framebuffers[a].shape[:2])
                patches.append(pointer_patch(framebuffers[a], at))
                # the frame shown when the window's latest press came (age k: the step k back led out of it)
                k = int(inputs[-1][7]) if inputs[-1][4] > 0 else 0
                press_patches.append(pointer_patch(framebuffers[int(index[max(0, t - 1 - k)])], at) if k else patches[-1])
                change_of.append(_store_change(framebuffers[a], framebuffers[b], change_ids, boxes, masks, colours,
                                               befores) if a != b else -1)
                f = inputs[-1]
                if change_of[-1] >= 0 and f[4] > 0 and f[8] == 1 and f[7] <= 1 and round(float(f[CLICKS])) == 1:
                    item = _click_item(framebuffers[a], framebuffers[b], at)
                    if item is not None:  # each lit icon once (the first press that lit it gives the patch)
                        items.setdefault(item[1].tobytes() + item[2].tobytes(), (*item, patches[-1]))
        if not thumb_of:
            raise NCError("transition memory: the episodes have no frame after their first")
        arrays = {"thumbs": np.stack(thumbs), "thumb_of": np.asarray(thumb_of, np.int32),
                  "inputs": np.stack(inputs).astype(np.float16), "change_of": np.asarray(change_of, np.int32),
                  "patches": np.stack(patches), "press_patches": np.stack(press_patches),
                  "starts": np.asarray(starts, np.int64),
                  **_pack_changes(boxes, masks, colours, befores), **_pack_items(list(items.values()))}
        return cls(arrays, config)

    def distances(self, framebuffer: np.ndarray, steps: Sequence[FrameActions], screen: tuple[int, int],
                  previous: tuple[np.ndarray, Sequence[FrameActions]] | None = None, past: Past | None = None
                  ) -> np.ndarray:
        """Squared distances ``(N,)`` from the present situation to every stored transition (with
        ``previous``, the step before it as :meth:`recall` takes it, the sequence key's term added)."""
        features = input_features(steps[-self.history:], screen)
        return self._distances(framebuffer, thumbnail(framebuffer), features, screen, previous, past)

    def _distances(self, framebuffer: np.ndarray, thumb: np.ndarray, features: np.ndarray, screen: tuple[int, int],
                   previous: tuple[np.ndarray, Sequence[FrameActions]] | None = None, past: Past | None = None
                   ) -> np.ndarray:
        """:meth:`distances`, given the present framebuffer's thumbnail ``(12, 16, 3)`` uint8 and its
        input features (:func:`input_features`) too."""
        pressed = self._pressed(features, past, 0)
        if previous is None or not self.sequence_weight:
            return self._step_distances(framebuffer, thumb, features, pressed)
        fb, before = previous
        f_before = input_features(before[-self.history:], screen)
        d_before = self._step_distances(fb, thumbnail(fb), f_before, self._pressed(f_before, past, 1))  # memo
        d = self._step_distances(framebuffer, thumb, features, pressed)
        # transition i's predecessor is i - 1, except at an episode's start (no predecessor: neutral)
        shifted = np.empty_like(d_before)
        shifted[1:] = d_before[:-1]
        shifted[self.starts] = np.median(d_before)
        return d + self.sequence_weight * shifted

    def _thumb_distances(self, thumb: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """Squared distances ``(U,)`` from thumbnail ``thumb`` ``(12, 16, 3)`` uint8 to every stored one,
        in the key's units (``thumb_weight``); with ``weights`` ``(576,)`` (:meth:`_near_weights`), each
        number's squared difference scaled by its weight."""
        q = thumb.reshape(-1).astype(np.float32) / 255 * float(self.config["thumb_weight"])
        if weights is None:
            return self.thumb_sq - 2 * self.thumbs @ q + (q ** 2).sum()
        return self.thumbs_2 @ weights - 2 * self.thumbs @ (weights * q) + (weights * q * q).sum()

    def _pressed(self, features: np.ndarray, past: Past | None, back: int) -> np.ndarray | None:
        """With ``press_patch``: the framebuffer shown when the latest press of a window (its features
        ``features``) came, for a step ``back`` steps before the present one (``past(k)``: the framebuffer
        k steps before the present one's); None where it is the step's own framebuffer or unknown."""
        if not self._press_patch or past is None or features[4] <= 0 or features[7] < 1:
            return None
        return past(int(features[7]) + back)

    def _step_distances(self, framebuffer: np.ndarray, thumb: np.ndarray, features: np.ndarray,
                        pressed: np.ndarray | None = None) -> np.ndarray:
        """One step's squared distances ``(N,)`` (the sequence key's two terms are two of these), from its
        framebuffer, thumbnail and input features ``(FEATURES,)`` (``pressed``: the framebuffer the patch
        under the press is read from, when not the step's own; :meth:`_pressed`). The latest ``MEMO``
        queries are memoised: in a rollout, a step's "previous" is the step before's "present", and at a
        press its plan's query is the step's own."""
        if self._kinds and _is_navigation(features[None])[0]:
            features = features.copy()
            features[KEY_CODE] = _key_code(NAVIGATION_KEYS[0])
        q_input = features * self.weights
        at = anchor(features, framebuffer.shape[:2])
        q_patch = pointer_patch(framebuffer, at).astype(np.float32) / 255 if self.patch_weight else None
        q_press = None
        if pressed is not None:  # what was under the press when it came (a press a step old or older)
            q_press = pointer_patch(pressed, at).astype(np.float32) / 255 * self._press_patch
        if q_patch is not None:
            q_patch *= self.patch_weight
        # the features themselves, not their weighted key: the near blocks hang on the anchor even when
        # its weights are 0
        key = thumb.tobytes() + features.tobytes() + b"".join(q.tobytes() for q in (q_patch, q_press) if q is not None)
        for known, distances in self._memo:
            if known == key:
                return distances
        d_thumb = self._thumb_distances(thumb, self._near_weights(features, framebuffer.shape[:2]))
        d = d_thumb[self.thumb_of] + self.input_sq - 2 * self.inputs @ q_input + (q_input ** 2).sum()
        if q_patch is not None:
            d += self.patch_sq - 2 * self.patches @ q_patch + (q_patch ** 2).sum()
        if q_press is not None:
            d += self.press_patch_sq - 2 * self.press_patches @ q_press + (q_press ** 2).sum()
        d.flags.writeable = False  # shared with the memo
        self._memo = [*self._memo[1 - MEMO:], (key, d)]
        return d

    def _near_weights(self, features: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """``(576,)`` float32: the weight of each thumbnail number in the step's key, ``thumb_far`` plus
        ``thumb_near`` for the blocks whose centre is within ``near_blocks`` blocks of where the input
        points (:func:`anchor` of ``features``; ``size`` is the framebuffer's (H, W))."""
        ay, ax = anchor(features, size)
        gh, gw = THUMB
        # the anchor in block units, block centres at integers
        cy, cx = (ay + 0.5) * gh / size[0] - 0.5, (ax + 0.5) * gw / size[1] - 0.5
        near = np.hypot(_BLOCK_ROWS - cy, _BLOCK_COLS - cx) <= float(self.config["near_blocks"])
        w = float(self.config["thumb_far"]) + float(self.config["thumb_near"]) * near
        return np.repeat(w.reshape(-1), 3).astype(np.float32)  # RGB of a block: one weight

    def recall(self, framebuffer: np.ndarray, steps: Sequence[FrameActions], screen: tuple[int, int],
               previous: tuple[np.ndarray, Sequence[FrameActions]] | None = None, past: Past | None = None
               ) -> tuple[Change | None, float]:
        """:meth:`_recall`, and where it changes nothing, a hover found at the pointer (``hover``,
        :meth:`_hovered`); a press's or key's plan (:meth:`_planned`) before it ("first") or where it
        changes nothing ("nothing")."""
        window = list(steps[-self.history:])
        features = input_features(window, screen)
        if self.config["click_items"] and "item_boxes" in self.arrays:
            lit = self._clicked_item(framebuffer, features, past)
            if lit is not None:
                return lit, 0.0
            if self._item_held(steps, features, screen, past):
                return None, 0.0
        plans = [(self.config[f"{event}_plan"], event) for event in PLAN_EVENTS]
        for mode, event in plans:
            planned = self._planned(framebuffer, window, features, screen, past, event) if mode == "first" else None
            if planned is not None:
                return planned
        change, d = self._recall(framebuffer, steps, screen, previous, past)
        for mode, event in plans:
            planned = self._planned(framebuffer, window, features, screen, past, event) \
                if mode == "nothing" and change is None else None
            if planned is not None:
                return planned
        if change is None and self.config["hover"] and d >= float(self.config["hover_far"]):
            change = self._hovered(framebuffer, features, past)
        if change is not None and self.config["moved_caret"]:
            key = _latest_key(steps[-self.history:])
            if key is not None and (key[2] or not _printable(key[1])):  # a glyph's own change moves its caret
                change = _caret_moved(change, framebuffer)
        return change, d

    def _clicked_item(self, framebuffer: np.ndarray, features: np.ndarray, past: Past | None = None
                      ) -> Change | None:
        """``click_items``: at a fresh left single click (``features`` from :func:`input_features`), the
        icon lit as a stored click lit an icon of the same look: of the ``ITEM_CANDIDATES`` stored icons
        nearest by the patch under their press, each is looked for unlit on ``framebuffer`` ``(H, W, 3)``
        uint8 (within ``item_rms``) at the places whose box holds the press or lies within ``ITEM_REACH``
        px of it; the place nearest the press (then the closest look) is lit, as a recolouring of the
        present pixels (:func:`_lut_apply`), and its label drawn as a selected label
        (:func:`_selected_label`); an icon selected before it is unselected as the frames before showed
        it (``past``, :func:`_unselected`). None where no stored icon shows there (the click landed on no
        icon)."""
        if not (features[4] > 0 and features[7] == 0 and features[8] == 1 and round(float(features[CLICKS])) == 1):
            return None
        size = framebuffer.shape[:2]
        py, px = _grid_px(features[5:7], size)
        key = hashlib.blake2b(framebuffer.tobytes() + np.asarray([py, px], np.int32).tobytes(), digest_size=16).digest()
        if key in self._item_cache:
            return self._item_cache[key]
        items = self._items()
        q = pointer_patch(framebuffer, (py, px)).astype(np.float32)
        order = np.argsort(((self._item_patches - q) ** 2).sum(1), kind="stable")[:ITEM_CANDIDATES]
        best = None
        for k in order:
            before, after, lit = items[k]
            h, w = before.shape[:2]
            top, left = max(0, py - h + 1 - ITEM_REACH), max(0, px - w + 1 - ITEM_REACH)
            region = framebuffer[top:min(size[0], py + h + ITEM_REACH), left:min(size[1], px + w + ITEM_REACH)]
            if region.shape[0] < h or region.shape[1] < w:
                continue
            rms = _patch_rms(region, before)
            ys, xs = np.nonzero(rms <= float(self.config["item_rms"]))
            if not len(ys):
                continue
            y0, x0 = top + ys, left + xs
            # how far the press lies outside each place's box (px): 0 inside
            outside = np.maximum.reduce([y0 - py, py - (y0 + h - 1), x0 - px, px - (x0 + w - 1), np.zeros_like(ys)])
            j = np.lexsort((rms[ys, xs], outside))[0]
            score = (int(outside[j]), float(rms[ys[j], xs[j]]))
            if best is None or score < best[0]:
                best = (score, (int(y0[j]), int(x0[j])), before, after, lit)
        change = None
        if best is not None and best[0][0]:  # the press outside the icon: is it on an icon selected already?
            reach, lit = best[0][0], best[4]
            near = framebuffer[max(0, py - reach):py + reach + 1, max(0, px - reach):px + reach + 1]
            if (near == lit).all(-1).any():
                best = None  # a click on the selected icon's edge keeps it selected: no icon beside it is lit
        if best is not None:
            _, (y, x), before, after, lit = best
            h, w = before.shape[:2]
            out = framebuffer.copy()
            out[y:y + h, x:x + w] = _lut_apply(before, after, framebuffer[y:y + h, x:x + w])
            _selected_label(out, framebuffer, (y, x), after, lit)
            _unselected(out, framebuffer, (y, y + h, x, x + w), lit, past,
                        items if self.config["unlit_items"] else (), float(self.config["item_rms"]))
            change = _difference(framebuffer, out)
        if len(self._item_cache) >= PLAN_CACHE:
            self._item_cache.clear()
        self._item_cache[key] = change
        return change

    def _items(self) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """``click_items``' stored icons as ``(before, after)`` pixels ``(h, w, 3)`` uint8 and the colour each
        is lit with ``(3,)`` (:func:`_lit_colour`), unpacked once."""
        if self._item_pixels is None:
            a = self.arrays
            boxes = a["item_boxes"].astype(np.int64)
            shapes = np.stack([boxes[:, 1] - boxes[:, 0], boxes[:, 3] - boxes[:, 2]], 1)  # (K, 2): (h, w)
            offsets = np.concatenate([[0], np.cumsum(shapes.prod(1))])
            self._item_pixels, kept = [], []
            for k, ((h, w), o0, o1) in enumerate(zip(shapes, offsets[:-1], offsets[1:], strict=True)):
                before, after = (a[name][o0:o1].reshape(h, w, 3) for name in ("item_befores", "item_afters"))
                lit = _lit_colour(before, after)
                if lit is not None:  # (every icon _click_item keeps is lit in a saturated colour)
                    self._item_pixels.append((before, after, lit))
                    kept.append(k)
            # the patches of the same icons, in the same order: _clicked_item indexes both by one rank
            self._item_patches = a["item_patches"][kept].astype(np.float32).reshape(len(kept), -1)
        return self._item_pixels

    def _item_held(self, steps: Sequence[FrameActions], features: np.ndarray, screen: tuple[int, int],
                   past: Past | None) -> bool:
        """``click_items``: whether the latest press (``features``) lit an icon (:meth:`_clicked_item` on the
        framebuffer it came on, ``past``) at most ``ITEM_HOLD`` steps ago with no key since: then nothing
        more changes. A click that selects an icon opens nothing, and a step's nearest transitions of a
        press as old, or its plan, are other screens' clicks, which opened a window or cleared a
        selection. Stateless: the press is looked at again as it came."""
        age = int(features[7])
        if not (features[4] > 0 and 1 <= age <= ITEM_HOLD and age < features[10] and age < len(steps)) or past is None:
            return False
        pressed = past(age)
        if pressed is None:
            return False
        window = list(steps[:len(steps) - age])[-self.history:]
        return self._clicked_item(pressed, input_features(window, screen), lambda k: past(age + k)) is not None

    def _planned(self, framebuffer: np.ndarray, window: list[FrameActions], features: np.ndarray,
                 screen: tuple[int, int], past: Past | None, event: str = "press") -> tuple[Change, float] | None:
        """``press_plan``: the change the stored press nearest the window's latest button press, as that
        press was when it came, made as many steps after it (placed as :meth:`_anchored` places it), and
        that press's distance; ``event`` "key" (``key_plan``): the same for a latest key that types no
        glyph. None where it changed nothing then, or the plan does not apply (no such input, a wheel
        notch, a newer input, the framebuffer of the input not kept, fewer than half of the ``plan_votes``
        nearest changed the screen at that age). ``window`` is the step's input window (the last ``history``
        records) and ``features`` its :func:`input_features`."""
        press_age, key_age = int(features[7]), int(features[10])
        key = _latest_key(window)
        if event == "press" and features[4] > 0 and press_age < key_age and features[8] != SCROLL_BUTTON:
            age, column = press_age, 7
        elif event == "key" and key is not None and key_age < press_age and (key[2] or not _printable(key[1])):
            age, column = key_age, 10
        else:
            return None
        if age >= len(window):
            return None
        pressed = framebuffer if age == 0 else (past(age) if past is not None else None)
        if pressed is None:
            return None
        at_press = input_features(window[:len(window) - age], screen)  # the window as it was at the input
        presses, d = self._nearest_inputs(pressed, at_press, column)
        if not len(presses):
            return None
        ends = self._ends[np.searchsorted(self.starts, presses, side="right") - 1]
        # each stored input's transition as many steps after it, where the same input is still the latest
        # and no input of the other kind came since (a key typed after the stored click drew its own changes)
        then = presses + age
        stored = self.arrays["inputs"][np.minimum(then, len(self.change_of) - 1)]
        other = 10 if column == 7 else 7
        then = np.where((then < ends) & (stored[:, column] == np.float16(age)) & (stored[:, other] > age), then, -1)
        changed = (then >= 0) & (self.change_of[np.maximum(then, 0)] >= 0)
        if not changed[0] or 2 * changed.sum() <= len(presses):
            return None
        size = framebuffer.shape[:2]
        change = self._anchored(self.change(int(self.change_of[then[0]])), int(then[0]), features, size)
        return (change, float(max(d[0], 0.0))) if change is not None else None

    def _nearest_inputs(self, pressed: np.ndarray, features: np.ndarray, column: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``plan_votes`` stored transitions nearest an input as it came (framebuffer ``pressed``,
        input ``features`` with the input at age 0) among those whose like input came at their step, nearest
        first (ties: the earliest stored), and their distances; found once per input. ``column`` is the
        input's age in the features: 7, a press (like: the same button and click count), or 10, a key
        (the same key and modifiers)."""
        thumb = thumbnail(pressed)
        key = bytes([column]) + thumb.tobytes() + features.tobytes() + pointer_patch(
            pressed, anchor(features, pressed.shape[:2])).tobytes()
        if key not in self._plans:
            stored = self.arrays["inputs"]
            if column == 7:
                like = (stored[:, 4] > 0) & (stored[:, 8] == np.float16(features[8])) & (
                    stored[:, CLICKS] == np.float16(features[CLICKS]))
            else:
                like = (stored[:, KEY_CODE] == features[KEY_CODE].astype(np.float16)).all(1)
            same = np.flatnonzero(like & (stored[:, column] == 0))
            # at the press step itself, the step's own query, which the recall then finds in the memo
            d = self._step_distances(pressed, thumb, features)[same]
            order = np.lexsort((same, d))[:max(1, int(self.config["plan_votes"]))]
            if len(self._plans) >= PLAN_CACHE:
                self._plans.clear()
            self._plans[key] = (same[order], d[order])
        return self._plans[key]

    def _recall(self, framebuffer: np.ndarray, steps: Sequence[FrameActions], screen: tuple[int, int],
                previous: tuple[np.ndarray, Sequence[FrameActions]] | None = None, past: Past | None = None
                ) -> tuple[Change | None, float]:
        """The change of the nearest stored transition (None: it changed nothing) and its distance.

        ``framebuffer`` ``(H, W, 3)`` uint8 is the screen before the step, ``steps`` its input window;
        ``previous`` is the step before as ``(framebuffer before it, its input window)``, for the
        sequence key (None: a rollout's first step, compared by the present step alone); ``past(k)`` is
        the framebuffer ``k`` steps before ``framebuffer`` (None where not kept), for ``press_patch``.

        With ``fit_tolerance`` set, a change is replayed only where it fits the present screen: the
        thumbnail blocks under its box must look as they did before it in the training episode (mean
        over those blocks of the largest channel difference, in 8-bit levels, at most the tolerance),
        else the next of the ``neighbours`` nearest is tried; a nearest "nothing changed" ends the search,
        unless ``change_bias`` is set: then a change that fits within that fraction more distance than the
        nearest "nothing" is replayed instead.
        """
        present = thumbnail(framebuffer)
        features = input_features(steps[-self.history:], screen)
        d = self._distances(framebuffer, present, features, screen, previous, past)
        size = framebuffer.shape[:2]
        if self.config["right_clicks"] and features[4] > 0 and features[8] == RIGHT_BUTTON and features[7] <= 1:
            # a right-click opens a context menu wherever it lands: on a screen where training never
            # right-clicked (a dialog), the nearest transitions are left clicks and keys there, which
            # draw anything but a menu; the nearest right-click of the same age, anchored, draws one
            same = self._right_clicks(int(features[7]))
            if same.any():
                d = np.where(same, d, np.inf)
        if self.config["shortcuts"] or self.config["named_keys"]:
            same = self._own_key(steps, features)
            if same is not None:
                d = np.where(same, d, np.inf)
        if self.config["typing_once"] and previous is not None and self._typed(steps, framebuffer, previous):
            return None, float(max(d.min(), 0.0))
        if self._kinds:
            voted = self._kind_vote(present, d, features)
            if voted is not None and voted < 0:
                return None, float(max(d.min(), 0.0))
            if voted is not None:
                return self._anchored(self.change(int(self.change_of[voted])), voted, features, size), \
                    float(max(d[voted], 0.0))
        if self.config["typing_caret"] and self.config["caret_first"]:
            placed, i = self._caret_glyph(steps, d, framebuffer)
            if placed is not None:
                return placed, float(max(d[i], 0.0))
        typing = self._typing(steps, int(np.argmin(d)))
        if typing is None and self.config["typing_early"]:
            typing = self._typing(steps, self._late_glyph(steps, framebuffer, present, features))
            if typing is not None:  # drawn early: a glyph only, never a late window or completion list
                typing = typing[self._small(typing)]
                typing = typing if len(typing) else None
        if typing is not None and self.config["terminal_glyphs"] and len(_caret_boxes(framebuffer)) == 1:
            typing = typing[self._small(typing)]  # a terminal with its caret shown: a key types a glyph
            typing = typing if len(typing) else None
        if typing is not None:
            # the nearest of all says *whether* the screen changes; the same key's nearest change that
            # fits the present screen says how (its glyph) and where (see _fitted): a key typed in an
            # editor and in a terminal has glyphs and carets of both kinds stored
            placed, i = self._type(typing, d, framebuffer)
            if placed is None:  # none fits anywhere: the nearest, where it was stored
                placed = self.change(int(self.change_of[i]))
            return placed, float(max(d[i], 0.0))
        if self._letter_voters is not None:  # the nearest typed nothing here: what do first keys do here?
            voted = self._letter_vote(present, d, features, framebuffer)
            if voted is not None:
                return voted
        if self.config["typing_caret"] and not self.config["caret_first"]:
            placed, i = self._caret_glyph(steps, d, framebuffer)
            if placed is not None:
                return placed, float(max(d[i], 0.0))
        tol = self.config.get("fit_tolerance")
        k = min(int(self.config.get("neighbours", 1)), len(d))
        if tol is None or k <= 1:
            i = int(np.argmin(d))  # ties: the earliest stored, so recall is deterministic
            return self._anchored(self.change(int(self.change_of[i])), i, features, size), float(max(d[i], 0.0))
        near = np.argpartition(d, k - 1)[:k]
        near = near[np.lexsort((near, d[near]))]  # nearest first, ties: the earliest stored
        bias, unchanged = float(self.config["change_bias"]), None  # the nearest "nothing" seen, its distance
        # a key on a screen training did not show (the nearest far): its nearest "nothing" is weak
        # evidence, a change whose "before" the screen shows (the menu open here that Escape closes) strong
        keyed = bool(self.config["shown_keys"]) and features[10] <= KIND_AGE and d[near[0]] >= float(
            self.config["hover_far"])
        if keyed and self._follow_px:
            shown = self._shown(self._same_key(features, d), d, features, framebuffer)
            if shown is not None:
                return shown
        evidence = bool(self.config["nothing_evidence"])
        nothing: list[int] = []  # with nothing_evidence: the "nothing" transitions seen, nearest first
        # this rollout changed nothing since the latest key or press (the present framebuffer is the one then)
        age = int(min(features[7], features[10]))
        then = past(age) if self.config["missed_change"] and past is not None and 1 <= age < NO_EVENT_AGE else None
        still = then is not None and np.array_equal(framebuffer, then)
        key = _latest_key(steps[-self.history:])
        caret_rows = bool(self.config["caret_rows"]) and key is not None and _named(key)
        for i in near:
            cid = int(self.change_of[i])
            if unchanged is not None and bias and d[i] > (1 + bias) * unchanged:
                break
            if cid < 0 and still and self._after_change[i]:
                continue  # its episode made the change earlier than this rollout: no evidence of none
            if cid < 0:
                if not bias and not evidence:
                    return None, float(max(d[i], 0.0))
                unchanged = unchanged if unchanged is not None else float(max(d[i], 0.0))
                nothing.append(int(i))
                continue
            if nothing and evidence:
                # a nearer "nothing" speaks against this change only where its screen showed what the
                # change's box showed before it (an icon selected that the click would clear)
                blocks = self._blocks(cid, size)
                stored = self.arrays["thumbs"][self.thumb_of[i]].astype(np.int16)
                quiet = self.arrays["thumbs"][self.thumb_of[nothing]].astype(np.int16)  # (n, 12, 16, 3)
                if (np.abs(stored[blocks] - quiet[(slice(None), *blocks)]).max(-1).mean((1, 2)) <= float(tol)).any():
                    continue
            change = placed = None  # unpacked only where it may be replayed (or followed)
            if self._follow_px and not self._glyph_sized[cid] and self._kept_before(cid):
                change = self.change(cid)
                placed = self._anchored(change, int(i), features, size)
                followed = self._followed(placed, cid, framebuffer)
                if followed is not None:
                    return followed, float(max(d[i], 0.0))
            fits = self._thumb_fits(int(i), present, size)
            if not fits and not self._right_clicked(int(i), features):
                continue
            if change is None:
                change = self.change(cid)
                placed = self._anchored(change, int(i), features, size)
            # a menu placed at the present right-click is replayed unchecked: no stored screen was there
            if fits or placed.box != change.box:
                return (_caret_row(placed, framebuffer) if caret_rows else placed), float(max(d[i], 0.0))  # None: off the frame
        return None, float(max(d[near[0]], 0.0))

    def _blocks(self, cid: int, size: tuple[int, int]) -> tuple[slice, slice]:
        """The thumbnail blocks (rows, cols) under stored change ``cid``'s box, on a screen of ``size`` (H, W)."""
        bh, bw = size[0] // THUMB[0], size[1] // THUMB[1]
        y0, y1, x0, x1 = (int(v) for v in self.arrays["boxes"][cid])
        return slice(y0 // bh, (y1 - 1) // bh + 1), slice(x0 // bw, (x1 - 1) // bw + 1)

    def _thumb_fits(self, i: int, present: np.ndarray, size: tuple[int, int]) -> bool:
        """Whether stored transition ``i``'s change fits the present screen (thumbnail ``present``
        ``(12, 16, 3)``, screen ``size``): the blocks under its box look as they did before it in its
        episode (mean over them of the largest channel difference within ``fit_tolerance`` levels)."""
        blocks = self._blocks(int(self.change_of[i]), size)
        stored = self.arrays["thumbs"][self.thumb_of[i]].astype(np.int16)
        diff = np.abs(stored[blocks] - present[blocks].astype(np.int16)).max(-1).mean()
        return bool(diff <= float(self.config["fit_tolerance"]))

    def _same_key(self, features: np.ndarray, d: np.ndarray) -> np.ndarray:
        """The ``SHOWN_KEYS`` nearest (distances ``d``) stored transitions that changed the screen after the
        present latest key (``features``), pressed as many steps ago, nearest first."""
        same = self._keyed(features)[1]
        return same[np.argsort(d[same], kind="stable")[:SHOWN_KEYS]]

    def _keyed(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The stored transitions whose latest key is the present one (``features``) pressed as many steps
        ago: ``(N,)`` bool, and the indices ``(n,)`` of those that changed the screen (found once per key
        and age)."""
        code = features[KEY_CODE].astype(np.float16)
        key = code.tobytes() + bytes([int(features[10])])
        if key not in self._key_age_cache:
            stored = self.arrays["inputs"]
            same = (stored[:, 10] == np.float16(features[10])) & (stored[:, KEY_CODE] == code).all(1)
            self._key_age_cache[key] = same, np.flatnonzero(same & (self.change_of >= 0))
        return self._key_age_cache[key]

    def _shown(self, candidates: np.ndarray, d: np.ndarray, features: np.ndarray, framebuffer: np.ndarray
               ) -> tuple[Change, float] | None:
        """Of the ``candidates`` (stored transitions that changed the screen, nearest first), the first whose
        change the present ``framebuffer`` shows the "before" of where it would be replayed (or ``follow``
        px from there: :meth:`_followed`; a glyph too: a BackSpace's glyph and caret shown here), and its
        distance; None where none does."""
        size = framebuffer.shape[:2]
        for i in candidates:
            cid = int(self.change_of[i])
            if not self._kept_before(cid):
                continue
            followed = self._followed(self._anchored(self.change(cid), int(i), features, size), cid, framebuffer)
            if followed is not None:
                return followed, float(max(d[i], 0.0))
        return None

    def _kind_vote(self, present: np.ndarray, d: np.ndarray, features: np.ndarray) -> int | None:
        """With ``key_kinds``, for a navigation key at most ``KIND_AGE`` steps old: the stored
        transitions of a navigation key at the same age on the same screen (thumbnail ``present``
        ``(12, 16, 3)`` uint8 within ``KIND_SCREEN``) vote on whether the screen changes. What such a
        key does hangs on a focus the screen does not show (the desktop's icon is selected by 22 of 39
        presses): the nearest of a few transitions is a coin toss, the majority of all of them is the
        likelier answer. ``features`` are the present input's (:func:`input_features`), ``d`` the
        distances. Returns the transition whose change to replay (the nearest changing voter), -1 when
        the majority changed nothing, None when the vote does not apply (another key, or fewer than
        ``KIND_VOTES`` transitions)."""
        if not _is_navigation(features[None])[0] or features[10] > KIND_AGE:
            return None
        stored = self.arrays["inputs"]
        voters = np.flatnonzero(self._navigation & (stored[:, 10].astype(np.float32) == features[10])
                                & (self._thumb_distances(present)[self.thumb_of] < KIND_SCREEN))
        if len(voters) < KIND_VOTES:
            return None
        changed = voters[self.change_of[voters] >= 0]
        return int(changed[np.argmin(d[changed])]) if 2 * len(changed) >= len(voters) else -1

    def _letter_vote(self, present: np.ndarray, d: np.ndarray, features: np.ndarray, framebuffer: np.ndarray
                     ) -> tuple[Change, float] | None:
        """With ``letter_kinds``, at the press step of a word's first printable key whose nearest stored
        transition typed nothing: the stored first keys (any glyph) at their press step on the
        ``LETTER_VOTERS`` nearest screens (thumbnail ``present``) vote. Where at least half of them made a
        change larger than a glyph (a file manager's type-ahead field opening, a desktop icon's selection
        cleared), the nearest such change (distances ``d``) whose "before" the present ``framebuffer``
        shows where it is placed (:meth:`_shown`) is replayed, with its distance; None otherwise (the
        key types at a caret, or nothing, as before). The first key does to such a screen what any first
        key does: which letter it is decides only the text, and one letter's few transitions there are a
        coin toss or none at all."""
        voters = self._letter_voters
        if features[10] != 0 or not _is_first_letter(features[None])[0] or len(voters) < LETTER_VOTERS:
            return None
        screens = self._thumb_distances(present)[self.thumb_of[voters]]
        voters = voters[np.argsort(screens, kind="stable")[:LETTER_VOTERS]]
        cids = self.change_of[voters]
        large = voters[(cids >= 0) & ~self._glyph_sized[np.maximum(cids, 0)]]
        if 2 * len(large) < len(voters):
            return None
        return self._shown(large[np.lexsort((large, d[large]))], d, features, framebuffer)  # ties: the earliest

    def _anchored(self, change: Change | None, i: int, present: np.ndarray, size: tuple[int, int]) -> Change | None:
        """``change`` (of stored transition ``i``) placed for the present right-click, when both windows
        hold a right-click and ``anchored`` is on. The stored menu itself (its box has an edge at the
        stored press, across and down) is placed as a toolkit places a popup at the present press: its
        top-left corner at the pointer, flipped left of it where it would cross the right edge; where it
        would cross the bottom, flipped above it if it stays below ``WORKAREA_TOP`` there, else shifted
        up to the bottom edge, as GTK flips then slides (so a menu that opened flipped or shifted in
        training opens right where there is room now; the stored menus at 256x192 open where this says
        in 135 of 142, shifted only in 123). Any other change (a highlighted item) moves by the offset
        between the two presses, kept inside the frame; a change over more than half the screen (a
        window) stays where it was stored. ``present`` are the present input's features
        (:func:`input_features`), ``size`` the framebuffer's (H, W)."""
        if change is None or not self._right_clicked(i, present):
            return change
        stored = self.arrays["inputs"][i].astype(np.float32)
        y0, y1, x0, x1 = change.box
        h, w = size
        bh, bw = y1 - y0, x1 - x0
        (py, px), (sy, sx) = anchor(present, size), anchor(stored, size)

        def popup(part: Change) -> Change:  # a stored popup placed at the present press
            ph, pw = part.box[1] - part.box[0], part.box[3] - part.box[2]
            nx = px if px + pw <= w else max(0, px - pw)
            flip = self.config["popup_flip"] and py - ph >= int(h * WORKAREA_TOP)
            ny = py if py + ph <= h else py - ph if flip else max(0, h - ph)
            return Change((ny, ny + ph, nx, nx + pw), part.mask, part.colours)

        window = bh * bw > h * w / 2
        if not window and _is_popup(change.box, (sy, sx), h):
            return popup(change)
        if self.config["popup_parts"]:
            # the menu and something else in one change (a right-click that also cleared a selected icon):
            # the menu placed as a popup, the rest left where it was (it belongs to the screen, not the press)
            parts = _split_popup(change, (sy, sx), h)
            if parts is not None and _area(parts[0]) <= h * w / 2:
                return _merged(parts[1], popup(parts[0]))
        if window:
            return change
        dy, dx = int(np.clip(py - sy, -y0, h - y1)), int(np.clip(px - sx, -x0, w - x1))
        return Change((y0 + dy, y1 + dy, x0 + dx, x1 + dx), change.mask, change.colours)

    def _own_key(self, steps: Sequence[FrameActions], features: np.ndarray) -> np.ndarray | None:
        """``(N,)`` bool: where the latest key of the input window ``steps`` (features ``features``) is a
        shortcut at most ``shortcuts`` steps old or a named key (:func:`_named`) at most ``named_keys``
        steps old, with no button press after it, the stored transitions whose latest key is that key at
        that age; None where that does not apply or none is stored."""
        key = _latest_key(steps[-self.history:])
        if key is None or (features[4] > 0 and features[7] <= features[10]):
            return None
        limit = int(self.config["shortcuts"] if key[2] else self.config["named_keys"] if _named(key) else 0)
        if not limit or key[0] > limit:  # 0: that kind of key is off
            return None
        same = self._keyed(features)[0]
        return same if same.any() else None

    def _right_clicks(self, age: int) -> np.ndarray:
        """``(N,)`` bool: the stored transitions whose latest press is a right-click ``age`` steps old."""
        if age not in self._right_cache:
            stored = self.arrays["inputs"]
            self._right_cache[age] = (stored[:, 4] > 0) & (stored[:, 8] == RIGHT_BUTTON) & (stored[:, 7] == age)
        return self._right_cache[age]

    def _right_clicked(self, i: int, present: np.ndarray) -> bool:
        """Whether ``anchored`` is on and both the present input (features ``present``) and stored
        transition ``i``'s hold a right-click as their latest press: :meth:`_anchored` may move its change."""
        stored = self.arrays["inputs"][i]
        return bool(self.config["anchored"] and present[4] > 0 and stored[4] > 0 and present[8] == RIGHT_BUTTON
                    and stored[8] == RIGHT_BUTTON)

    def _typed(self, steps: Sequence[FrameActions], framebuffer: np.ndarray,
               previous: tuple[np.ndarray, Sequence[FrameActions]]) -> bool:
        """Whether the latest key of input window ``steps`` is a printable key pressed one or two steps
        ago whose glyph the previous step drew: that step changed the screen (``previous`` = (the
        framebuffer before it, its window); ``framebuffer`` the one after it) and its latest key was the
        same press. A glyph shows in the step of its press or one of the two after it (the key and the
        screen's redraw race), so training holds all three and each step's nearest neighbour alone may
        draw it twice ("llss" for "ls")."""
        latest = _latest_key(steps[-self.history:])
        if latest is None or not 1 <= latest[0] <= 2 or latest[2] or not _printable(latest[1]):
            return False
        before = _latest_key(previous[1][-self.history:])
        return before == (latest[0] - 1, latest[1], 0) and bool((previous[0] != framebuffer).any())

    def _late_glyph(self, steps: Sequence[FrameActions], framebuffer: np.ndarray, present: np.ndarray,
                    features: np.ndarray) -> int:
        """With ``typing_early``, at a printable key's press step (``features``' key 0 steps old): the
        nearest transition to the same input with the key one step old (the step where a glyph that
        comes late shows), so :meth:`_typing` may draw the glyph now; -1 otherwise. Pressed one per
        frame, a key whose press step drew nothing is never drawn: the next key is the latest by then.
        Only a small change (a glyph) is drawn early: -1 when the nearest's change is not one."""
        if self._glyph_press(steps) is None:
            return -1  # typing off, or not a glyph's press step: no second distance pass (Return, a shortcut, no key)
        later = features.copy()
        later[10] = 1.0
        nearest = int(np.argmin(self._step_distances(framebuffer, present, later)))
        # what comes a step late and is drawn early is a glyph: a late change of any size (a completion
        # list, a search box opening) drawn at the press step cascades through a rollout
        return nearest if self._small(np.array([nearest]))[0] else -1

    def _small(self, transitions: np.ndarray) -> np.ndarray:
        """``(n,)`` bool: whether each stored transition's change is small (``SMALL`` px a side or less:
        a glyph and its caret), for transition indices ``transitions`` ``(n,)``."""
        cid = self.change_of[transitions]
        return (cid >= 0) & self._glyph_sized[np.maximum(cid, 0)]

    def _type(self, typing: np.ndarray, d: np.ndarray, framebuffer: np.ndarray) -> tuple[Change | None, int]:
        """The first of the ``typing_candidates`` nearest distinct changes among transitions ``typing``
        ``(n,)`` (by distances ``d``) that fits the present ``framebuffer`` somewhere (:meth:`_fitted`;
        with ``blank_caret``, then :meth:`_blanked`), placed, and its transition; (None, the nearest) when
        none fits."""
        order = typing[np.lexsort((typing, d[typing]))]
        # distinct changes: a glyph typed on many training lines is stored once, and its repeats would
        # spend the candidates on one "before" (a caret on another line's pixel phase fits none)
        first = np.unique(self.change_of[order], return_index=True)[1]
        order = order[np.sort(first)][:max(1, int(self.config["typing_candidates"]))]
        fit, loose = float(self.config["fit_rms"]), float(self.config["loose_rms"])
        passes = [(self._fitted, fit)]
        if self.config["blank_caret"]:
            passes.append((self._blanked, fit))
        if loose > 0:
            passes.append((self._fitted, loose))
        for fitted, tol in passes:
            for i in order:
                placed = fitted(int(self.change_of[i]), framebuffer, tol)
                if placed is not None:
                    return placed, int(i)
        return None, int(order[0])

    def _caret_glyph(self, steps: Sequence[FrameActions], d: np.ndarray,
                     framebuffer: np.ndarray) -> tuple[Change | None, int]:
        """The key's glyph placed at a caret on the present screen (:meth:`_caret_glyphs`, :meth:`_type`)
        and its transition; (None, -1) where no caret fits or it is not a printable key's press step."""
        glyphs = self._caret_glyphs(steps)
        return self._type(glyphs, d, framebuffer) if glyphs is not None else (None, -1)

    def _caret_glyphs(self, steps: Sequence[FrameActions]) -> np.ndarray | None:
        """With ``typing_caret``, at a printable key's press step: the key's stored glyphs whose "before"
        shows a caret (spread of at least ``CARET_STD`` levels), transition indices ``(n,)``; None
        otherwise. Where one fits, a caret is on the screen and the key types there, whatever the nearest
        transition says: a screen no training episode showed (another episode's command output above
        the prompt) has far neighbours, and the nearest of them often typed nothing."""
        key = self._glyph_press(steps)
        if key is None:
            return None
        same = self._key_changes(key)
        same = same[self._small(same)]
        same = same[self._shows_caret(self.change_of[same])]
        return same if len(same) else None

    def _shows_caret(self, cids: np.ndarray) -> np.ndarray:
        """``(n,)`` bool: whether each stored change's "before" shows a caret (a spread of at least
        ``CARET_STD`` levels; a change larger than a glyph: False), for change ids ``cids`` ``(n,)``."""
        if self._spread is None:  # once, on the first typed key (~30 ms for the bundled memory)
            a = self.arrays
            offsets = a["before_offsets"].astype(np.int64)
            self._spread = np.array([a["befores"][b0:b1].std() if glyph else 0.0 for b0, b1, glyph
                                     in zip(offsets[:-1], offsets[1:], self._glyph_sized, strict=True)])
        return self._spread[cids] >= CARET_STD

    def _glyph_press(self, steps: Sequence[FrameActions]) -> str | None:
        """The latest key of input window ``steps`` when it is a printable key (no modifier under it)
        pressed in the step itself and the memory can type (``typing``, "before" pixels stored); None
        otherwise: the step where ``typing_early`` and ``typing_caret`` may draw its glyph."""
        latest = _latest_key(steps[-self.history:])
        if self._changes is None or latest is None or latest[0] != 0 or latest[2] or not _printable(latest[1]):
            return None
        return latest[1]

    def _key_changes(self, key: str) -> np.ndarray:
        """Indices ``(n,)`` of the stored transitions whose latest key is ``key`` (no modifier under it)
        and that change the screen (a scan of every stored input, once per key)."""
        if key not in self._key_cache:
            code = _key_code(key).astype(np.float16)
            self._key_cache[key] = np.flatnonzero((self.arrays["inputs"][:, KEY_CODE] == code).all(1) & self._changes)
        return self._key_cache[key]

    def _typing(self, steps: Sequence[FrameActions], nearest: int) -> np.ndarray | None:
        """The stored changes made under the present key (transition indices), when the latest key
        press in the window is a printable key (a glyph), the ``nearest`` transition changes the screen,
        ``typing`` is on and the memory has any; else None. Other keys (Return, a shortcut) do what
        their screen does, not what the key did elsewhere: the nearest decides."""
        if self._changes is None or nearest < 0 or not self._changes[nearest]:
            return None
        latest = _latest_key(steps[-self.history:])
        if latest is None or latest[2] or not _printable(latest[1]):  # a shortcut (ctrl+v) types nothing
            return None
        same = self._key_changes(latest[1])
        if self.config["typing_kind"] and len(same):
            # the nearest also says *what kind* of change: a glyph at a caret, or a larger one (a search
            # box opening); a space typed at a terminal's prompt is not the 90x55 px change the same key
            # made on another screen, though both are the key's changes
            kind = self._small(same) == self._small(np.array([nearest]))[0]
            same = same[kind] if kind.any() else same
        return same if len(same) else None

    def _fitted(self, cid: int, framebuffer: np.ndarray, tol: float) -> Change | None:
        """Change ``cid`` (not -1), moved (if small) to the place nearest its stored one where the present
        ``framebuffer`` ``(H, W, 3)`` uint8 looks as its box did before it (RMS within ``tol`` levels);
        None where no place does. A larger change stays where it was stored, or with ``follow_typed``
        goes where :meth:`_followed` finds its "before" (None where it does not: a selected field's text
        that the first key replaces is where the dialog is now, or the next candidate is tried)."""
        change = self.change(cid)
        if not self._glyph_sized[cid]:
            follows = self.config["follow_typed"] or (self.config["typed_selection"] and self._selection(cid))
            if not (self._follow_px and follows and self._kept_before(cid)):
                return change  # it stays where it was stored
            return self._followed(change, cid, framebuffer, max(framebuffer.shape[:2]))  # anywhere, as a glyph
        y0, y1, x0, x1 = change.box
        h, w = y1 - y0, x1 - x0
        rms = _patch_rms(framebuffer, self._before(cid))  # (H - h + 1, W - w + 1)
        fits = np.argwhere(rms <= tol)
        if not len(fits):
            return None
        if self.config["lowest_caret"] and self._shows_caret(np.array([cid]))[0]:
            # text flows down, so a caret a replayed change left behind (a Return's replay that did not
            # erase the old one) is above the live one: the lowest places that fit, within half the
            # box's height, then the nearest of those
            fits = fits[fits[:, 0] >= fits[:, 0].max() - h // 2]
        elif rms[y0, x0] <= tol:
            return change
        # the nearest place that fits (ties: the first in row-major order, so recall is deterministic)
        y, x = (int(v) for v in fits[np.argmin(((fits - [y0, x0]) ** 2).sum(1))])
        return Change((y, y + h, x, x + w), change.mask, change.colours)

    def _selection(self, cid: int) -> bool:
        """Whether stored change ``cid``'s "before" is selected text: its most frequent colour is saturated
        (channels ``SELECTION_SPREAD`` levels or more apart: the theme's selection blue), as no terminal
        row, window, panel or desktop is. False where its "before" was not kept."""
        if not self._kept_before(cid):
            return False
        mode = self._page(cid).astype(np.int16)
        return bool(mode.max() - mode.min() >= SELECTION_SPREAD)

    def _blanked(self, cid: int, framebuffer: np.ndarray, tol: float) -> Change | None:
        """With ``blank_caret``: small change ``cid`` whose "before" shows a caret on a light page (an
        editor's or a field's caret line: they blink), placed where its caret would be had it blinked off. The blank place nearest its stored one (within ``blank_caret`` px)
        where the present ``framebuffer`` ``(H, W, 3)`` uint8 is one colour, the "before"'s most frequent
        (RMS within ``tol`` levels), then moved left along its row to a pixel clear of the last ink: text
        is typed after the last glyph of its line, or at the line's start. None where no place is blank, or
        the change is another kind. A caret blinks: the first glyph of an empty document, or the next
        after a replay that drew none, has no caret to find, and a loose fit lands on a window's edge."""
        if not self._glyph_sized[cid] or not self._shows_caret(np.array([cid]))[0]:
            return None
        page = self._page(cid)
        if int(page.astype(np.int16).sum()) < 3 * 128:
            # a caret on a dark page is a terminal's block, which does not blink here: where none fits, a
            # replay lost it, and every black cell is "blank" (at the browser, "echo hello" typed after a
            # replayed Return went to rows below the prompt)
            return None
        change = self.change(cid)
        y0, y1, x0, x1 = change.box
        h, w = y1 - y0, x1 - x0
        blank = np.broadcast_to(page, (h, w, 3))
        r, (fh, fw) = int(self.config["blank_caret"]), framebuffer.shape[:2]
        top, left = max(0, y0 - r), max(0, x0 - r)
        region = framebuffer[top:min(fh, y1 + r), left:min(fw, x1 + r)]
        if region.shape[0] < h or region.shape[1] < w:
            return None
        fits = np.argwhere(_patch_rms(region, blank) <= tol)
        if not len(fits):
            return None
        # the nearest blank place (ties: the first in row-major order, so recall is deterministic) ...
        y, x = (int(v) for v in fits[np.argmin(((fits - [y0 - top, x0 - left]) ** 2).sum(1))])
        y, x = top + y, left + x
        # ... and left along its row to a pixel clear of the last ink (a glyph's cell keeps its right
        # column blank, the caret stands after it), or to the row's start
        row = _patch_rms(framebuffer[y:y + h, :x + w], blank)[0]  # (x + 1,): the box at each column
        inked = np.flatnonzero(row > tol)  # columns where the box would hold ink: the last is the ink's
        x = min(int(inked[-1]) + 2, x) if len(inked) else 0
        return Change((y, y + h, x, x + w), change.mask, change.colours)

    def _followed(self, change: Change, cid: int, framebuffer: np.ndarray, radius: int | None = None
                  ) -> Change | None:
        """With ``follow``: stored change ``cid`` (``change``: placed where it would be replayed) where
        the present ``framebuffer`` ``(H, W, 3)`` uint8 shows what its box showed before it (RMS of 3x3
        means within ``follow_rms`` levels): the place itself if it does, else the closest place within
        ``radius`` px (default ``follow``) if every such place is within ``FOLLOW_SPREAD`` px of the
        others. None where no place does or two apart do: the thumbnail fit check decides, as without
        ``follow``. Asked only of a change that kept its "before" (:meth:`_kept_before`). A menu or a window is rarely where training saw it; its items are where they are
        relative to it, and a highlight found by what it highlights lands on that item."""
        y0, y1, x0, x1 = change.box
        h, w = y1 - y0, x1 - x0
        sy0, sy1, sx0, sx1 = (int(v) for v in self.arrays["boxes"][cid])
        if min(h, w) < 3 or (h, w) != (sy1 - sy0, sx1 - sx0):
            return None  # no 3x3 mean inside it, or placed in parts (popup_parts): no one "before" to look for
        r, (fh, fw) = radius or self._follow_px, framebuffer.shape[:2]
        top, left = max(0, y0 - r), max(0, x0 - r)
        region = framebuffer[top:min(fh, y1 + r), left:min(fw, x1 + r)]
        # averaged over 3x3 pixels, both: half a pixel of phase moves a thin stroke, hardly a 3x3 mean
        seen, before = _box_mean(region), _box_mean(self._before(cid))
        tol, (py, px) = float(self.config["follow_rms"]), (y0 - top, x0 - left)
        if np.sqrt(((seen[py:py + h - 2, px:px + w - 2] - before) ** 2).mean()) <= tol:
            return change  # where it is placed (most steps: no search)
        if _mean_gap(seen, before).min() > tol + 1.0:
            return None  # no place's colour means come close enough: the RMS is never below their gap
        rms = _patch_rms(seen, before)  # (rows, cols) of places in the region
        fits = np.argwhere(rms <= tol)
        if not len(fits) or (fits.max(0) - fits.min(0)).max() > 2 * FOLLOW_SPREAD:
            return None  # nowhere, or in two places (a flat "before", an item highlighted already)
        # the closest of the places that fit (they are a pixel or two apart; ties: the first in row-major
        # order, so recall is deterministic)
        y, x = (int(v) for v in np.unravel_index(np.argmin(rms), rms.shape))
        return Change((top + y, top + y + h, left + x, left + x + w), change.mask, change.colours)

    def _hovered(self, framebuffer: np.ndarray, features: np.ndarray, past: Past | None = None) -> Change | None:
        """With ``hover``, where the pointer moved in the step (``features``; no press or key in the
        step): of the stored hovers (:meth:`_hover_items`) whose unlit item the present ``framebuffer``
        ``(H, W, 3)`` uint8 shows in a box around the pointer (RMS of 3x3 means within ``hover_rms``,
        every such place within ``FOLLOW_SPREAD`` px of the others), the one whose stored patch under the
        pointer is nearest the present one, drawn there as a recolouring of the present pixels
        (:func:`_recoloured`); None where none does. The neighbours by the whole screen are far where a
        menu opened at a new place, and what lights an item is the item under the pointer, wherever the
        menu is."""
        if (features[0:2] == features[2:4]).all() or (features[4] > 0 and features[7] < 2) or features[10] < 1:
            return None
        size = framebuffer.shape[:2]
        items = self._hover_items(size[0])
        if not items:
            return None
        py, px = _pointer_px(features, size)
        q = pointer_patch(framebuffer, (py, px)).astype(np.float32)
        # of the hovers that fit, the one whose stored patch under the pointer is nearest the present one
        order = np.argsort(((self._hover_patches - q) ** 2).sum(1), kind="stable")
        # one correlation for them all, each item by its top-left corner (an icon, the start of its label);
        # kept where its whole box holds the pointer, HOVER_MARGIN px inside its top and bottom (at an item's
        # edge, the item above or below may be the one the pointer is over)
        heights, widths = self._hover_sizes[:, 0], self._hover_sizes[:, 1]
        places = _places(framebuffer, self._hover_kernels,
                         (py - int(heights.max()) + 1 + HOVER_MARGIN, py - HOVER_MARGIN), (px - int(widths.max()) + 1, px),
                         float(self.config["hover_rms"]))
        found = {k: (y, x) for k, (at, h, w) in enumerate(zip(places, heights, widths, strict=True)) if at is not None
                 for y, x in [at] if y + h - 1 - HOVER_MARGIN >= py and x + w > px}
        for k in order:
            if int(k) in found:
                _, before, after = items[k]
                return _recoloured(framebuffer, found[int(k)], before, after, past)
        return None

    def _hover_items(self, fh: int) -> list[tuple[int, np.ndarray, np.ndarray]]:
        """The stored hovers, found once: per distinct change made where the pointer moved with no press
        or key in its window, of one colour of at least ``HIGHLIGHT_SATURATION`` levels across its
        channels (the theme's selection colour) newly covering at least half of some rows of its box,
        at most ``HOVER_ROWS`` from the first to the last, the stored pointer on them or an item away (an
        item lit; a change that also unlit the item above is cut to the rows it lit): ``(transition,
        before (h, w, 3), after (h, w, 3))`` of those rows and a row either side (``fh``: the framebuffers' height, where the stored pointer is)."""
        if self._hovers is None:
            a = self.arrays
            inputs = a["inputs"].astype(np.float32)
            cid = self.change_of
            ok = (cid >= 0) & (inputs[:, 4] <= 0) & (inputs[:, 0:2] != inputs[:, 2:4]).any(1) & (inputs[:, 10] >= 1)
            idx = np.flatnonzero(ok)
            idx = idx[np.unique(cid[idx], return_index=True)[1]]
            self._hovers = []
            for i in idx:
                c = int(cid[i])
                y0, y1, x0, x1 = (int(v) for v in a["boxes"][c])
                if not self._kept_before(c) or x1 - x0 <= SMALL:
                    continue
                lit = _mode_colour(a["colours"][a["colour_offsets"][c]:a["colour_offsets"][c + 1]])
                if int(lit.max()) - int(lit.min()) < HIGHLIGHT_SATURATION:
                    continue
                change = self.change(c)
                before = self._before(c)
                after = before.copy()
                after[change.mask] = change.colours
                rows = np.flatnonzero(((after == lit).all(-1).mean(1) >= 0.5) & ((before == lit).all(-1).mean(1) < 0.1))
                py = int(round(float(inputs[i, 1]) * fh / GRID[0])) - y0  # the stored pointer's row in the box
                # the pointer on the rows lit or an item away (the highlight comes a step behind a gliding pointer)
                if not len(rows) or rows[-1] - rows[0] + 1 > HOVER_ROWS \
                        or not rows[0] - HOVER_ROWS <= py <= rows[-1] + HOVER_ROWS:
                    continue
                r0, r1 = max(0, rows[0] - 1), min(y1 - y0, rows[-1] + 2)
                if r1 - r0 >= 3:
                    self._hovers.append((int(i), before[r0:r1], after[r0:r1]))
            import torch

            # per item its size, and its top-left corner (as tall as the shortest item, at most HOVER_KEY_PX
            # wide) as 3x3 means, (K, 3, kh - 2, kw - 2) in [0, 1]
            self._hover_sizes = np.array([b.shape[:2] for _, b, _ in self._hovers], np.int64).reshape(-1, 2)
            self._hover_patches = a["patches"][[i for i, _, _ in self._hovers]].astype(np.float32).reshape(
                len(self._hovers), -1)
            kh, kw = (int(self._hover_sizes[:, 0].min()), min(HOVER_KEY_PX, int(self._hover_sizes[:, 1].min()))) \
                if self._hovers else (3, 3)
            self._hover_kernels = torch.from_numpy(
                np.stack([_box_mean(b[:kh, :kw]) for _, b, _ in self._hovers] or [np.zeros((kh - 2, kw - 2, 3))]) / 255
            ).float().permute(0, 3, 1, 2).contiguous()
        return self._hovers

    def change(self, cid: int) -> Change | None:
        """Stored change ``cid`` (-1: None)."""
        if cid < 0:
            return None
        a = self.arrays
        y0, y1, x0, x1 = (int(v) for v in a["boxes"][cid])
        m0, m1 = a["mask_offsets"][cid], a["mask_offsets"][cid + 1]
        mask = np.unpackbits(a["masks"][m0:m1], count=(y1 - y0) * (x1 - x0)).astype(bool).reshape(y1 - y0, x1 - x0)
        c0, c1 = a["colour_offsets"][cid], a["colour_offsets"][cid + 1]
        return Change((y0, y1, x0, x1), mask, a["colours"][c0:c1])

    def save(self, path: str | Path) -> None:
        """``path`` (``memory.npz``), LZMA-compressed, written whole or not at all. An ``.npz`` is a zip
        of ``.npy`` files and ``np.load`` reads any method Python's ``zipfile`` does; LZMA stores the
        changes' pixels (most of the file: flat GUI colours, windows seen again a little changed) in a
        third of what ``np.savez_compressed``'s deflate takes (16.7 -> 5.5 MB for the bundled memory)."""
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_LZMA) as zf:
            for name, array in self.arrays.items():
                entry = io.BytesIO()
                np.save(entry, np.asarray(array), allow_pickle=False)
                zf.writestr(f"{name}.npy", entry.getvalue())
        atomic_write_bytes(Path(path), buf.getvalue())

    @classmethod
    def load(cls, path: str | Path, config: dict[str, Any]) -> TransitionMemory:
        """A memory saved by :meth:`save`, with its settings (the model config's ``memory_recall``)."""
        path = Path(path)
        try:
            with np.load(path) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError, zlib.error, lzma.LZMAError, zipfile.BadZipFile) as e:
            raise NCError(f"{path}: not a transition memory ({e})") from e
        missing = {"thumbs", "thumb_of", "inputs", "change_of", "boxes", "masks", "mask_offsets", "colours",
                   "colour_offsets"} - set(arrays)
        if missing:
            raise NCError(f"{path}: transition memory without {sorted(missing)}")
        return cls(arrays, config)


def _is_popup(box: tuple[int, int, int, int], press: tuple[int, int], height: int) -> bool:
    """Whether a change's ``box`` (y0, y1, x0, x1) is a popup opened by a right-click at ``press`` (row,
    col) on a framebuffer ``height`` rows tall: a corner at the press (``POPUP_PX``), or its bottom at the
    frame's and its top above the press (a menu shifted up at the bottom edge)."""
    (y0, y1, x0, x1), (sy, sx) = box, press
    near = lambda a, b: abs(a - b) <= POPUP_PX  # noqa: E731
    return (near(x0, sx) or near(x1, sx)) and (near(y0, sy) or near(y1, sy) or (y1 >= height - POPUP_PX and y0 <= sy))


def _split_popup(change: Change, press: tuple[int, int], height: int) -> tuple[Change, Change] | None:
    """``change`` as (the popup, the rest) where one of its connected parts (pixels up to 2 apart joined)
    is a popup of a right-click at ``press`` (:func:`_is_popup`) and other parts remain; else None."""
    from scipy import ndimage

    y0, _, x0, _ = change.box
    grown = ndimage.binary_dilation(change.mask, iterations=2)
    labels, n = ndimage.label(grown, structure=np.ones((3, 3), bool))
    if n < 2:
        return None
    labels = np.where(change.mask, labels, 0)
    for k, (rows, cols) in enumerate(ndimage.find_objects(labels), start=1):
        if rows is None:
            continue
        box = (y0 + rows.start, y0 + rows.stop, x0 + cols.start, x0 + cols.stop)
        if _is_popup(box, press, height):
            mine = labels == k
            return _part(change, mine), _part(change, change.mask & ~mine)
    return None


def _block_carets(pixels: np.ndarray, height: int) -> np.ndarray:
    """``(h, w)`` bool: the block carets of ``pixels`` ``(h, w, 3)`` uint8 (part of a frame ``height`` rows
    tall), each as its box grown by a pixel (its anti-aliased rim): solid light rectangles (``BLOCK_LIGHT``,
    at least ``BLOCK_FILL`` of the box) of a text cell's size for a frame of this height, on a dark page
    (the ring around them darker than ``BLOCK_PAGE``), as a terminal draws its caret. A glyph's strokes are
    thin, a window's light areas large."""
    from scipy import ndimage

    h, w = pixels.shape[:2]
    (r0, r1), (c0, c1) = ((round(a * height / 192), round(b * height / 192)) for a, b in (BLOCK_ROWS, BLOCK_COLS))
    # each channel light (np.minimum over the channels: a reduce over an axis of 3 is ten times slower)
    light = np.minimum(np.minimum(pixels[..., 0], pixels[..., 1]), pixels[..., 2]) >= BLOCK_LIGHT
    out = np.zeros((h, w), bool)
    labels, _ = ndimage.label(light)
    for k, (rows, cols) in enumerate(ndimage.find_objects(labels), start=1):
        bh, bw = rows.stop - rows.start, cols.stop - cols.start
        if not (r0 <= bh <= r1 and c0 <= bw <= c1):
            continue
        if (labels[rows, cols] == k).mean() < BLOCK_FILL:
            continue
        # the ring 2 px wide past the anti-aliased rim (narrower at the edge of ``pixels``), in a local window
        wy, wx = max(rows.start - 3, 0), max(cols.start - 3, 0)
        window = pixels[wy:rows.stop + 3, wx:cols.stop + 3].astype(np.float32).mean(-1)  # grey
        ring = np.ones(window.shape, bool)
        ring[max(rows.start - 1, 0) - wy:rows.stop + 1 - wy, max(cols.start - 1, 0) - wx:cols.stop + 1 - wx] = False
        if ring.any() and window[ring].mean() < BLOCK_PAGE:
            out[max(rows.start - 1, 0):rows.stop + 1, max(cols.start - 1, 0):cols.stop + 1] = True
    return out


def _caret_boxes(framebuffer: np.ndarray) -> list[tuple[slice, slice]]:
    """The (rows, cols) of each block caret ``framebuffer`` ``(H, W, 3)`` uint8 shows, its rim included
    (:func:`_block_carets`; exactly one: a terminal with the focus)."""
    from scipy import ndimage

    return ndimage.find_objects(ndimage.label(_block_carets(framebuffer, framebuffer.shape[0]))[0])


def _drawn_carets(change: Change, height: int) -> np.ndarray:
    """``(h, w)`` bool over ``change``'s box: the block carets it draws (:func:`_block_carets`), its
    pixels seen alone on a black page (a frame ``height`` rows tall)."""
    y0, y1, x0, x1 = change.box
    alone = np.zeros((y1 - y0, x1 - x0, 3), np.uint8)
    alone[change.mask] = change.colours
    return _block_carets(alone, height)


def _caret_row(change: Change, framebuffer: np.ndarray) -> Change | None:
    """``change`` (placed) moved up or down so that its box's top row, the row of the caret it clears (a
    Return's new lines come below it), is the top row of the one block caret the present ``framebuffer``
    ``(H, W, 3)`` uint8 shows (:func:`_block_carets`), where the change draws a block caret below that row
    (the new prompt's); unchanged where the screen shows none or several. Where it would run past the
    terminal's page (its dark rows around the caret, over the change's columns), the page scrolls up by
    the rows it would overrun and the change comes that much higher (:func:`_scrolled`); None where the
    change is taller than the page. (Pasted at its own rows, a stored Return wrote over the commands above.)"""
    height = framebuffer.shape[0]
    y0, y1, x0, x1 = change.box
    drawn = _drawn_carets(change, height)
    present = _caret_boxes(framebuffer)
    if len(present) != 1 or not drawn[1:].any():
        return change
    row = present[0][0].start
    # the page's rows: mostly dark pixels (a row of text too: its glyphs' strokes are a fraction of it)
    dark = (framebuffer[:, x0:x1].max(-1) < BLOCK_PAGE).mean(1) >= 0.5
    top, bottom = row, row
    while top > 0 and dark[top - 1]:
        top -= 1
    while bottom < height and dark[bottom]:
        bottom += 1
    if row + y1 - y0 > bottom:
        return _scrolled(change, framebuffer, row, top, bottom)
    if row == y0:
        return change
    return Change((row, row + y1 - y0, x0, x1), change.mask, change.colours)


def _scrolled(change: Change, framebuffer: np.ndarray, row: int, top: int, bottom: int) -> Change | None:
    """The terminal page rows ``top:bottom`` of ``framebuffer`` ``(H, W, 3)`` uint8, over ``change``'s
    columns, its block caret erased, scrolled up by the rows ``change`` would overrun with its top at
    ``row``, the rows freed at the bottom in the page's colour, and ``change`` pasted that much higher: one
    change over the page. None where ``change`` is taller than the page."""
    y0, y1, x0, x1 = change.box
    over = row + y1 - y0 - bottom
    if row - over < top:
        return None
    page = framebuffer[top:bottom, x0:x1].copy()
    colour = _mode_colour(page.reshape(-1, 3))
    page[_block_carets(page, framebuffer.shape[0])] = colour  # the caret moves to the new prompt
    out = np.empty_like(page)
    out[:len(page) - over] = page[over:]
    out[len(page) - over:] = colour
    out[row - over - top:row - over - top + y1 - y0][change.mask] = change.colours
    return Change((top, bottom, x0, x1), np.ones(out.shape[:2], bool), out.reshape(-1, 3))


def _caret_moved(change: Change, framebuffer: np.ndarray) -> Change:
    """``change`` (to be pasted onto ``framebuffer`` ``(H, W, 3)`` uint8) with each block caret the
    present screen shows in its box erased to the page's colour where the change draws a block caret
    elsewhere (the caret moved: :func:`_block_carets`); else ``change`` unchanged. A caret the change draws
    over in part (its training line's caret cell was there) is erased too, outside the change's mask."""
    from scipy import ndimage

    y0, y1, x0, x1 = change.box
    height = framebuffer.shape[0]
    new = _drawn_carets(change, height)
    if not new.any():
        return change
    present = framebuffer[y0:y1, x0:x1]
    labels, _ = ndimage.label(_block_carets(present, height))
    old = (labels > 0) & ~np.isin(labels, np.unique(labels[new])) & ~change.mask
    if not old.any():
        return change
    after = present.copy()
    after[change.mask] = change.colours
    after[old] = _mode_colour(after[~old])  # the page: the box's most frequent colour
    mask = change.mask | old
    return Change(change.box, mask, after[mask])


def _area(change: Change) -> int:
    """The area of ``change``'s box, px."""
    y0, y1, x0, x1 = change.box
    return (y1 - y0) * (x1 - x0)


def _part(change: Change, keep: np.ndarray) -> Change:
    """The pixels ``keep`` ``(h, w)`` bool (within ``change.mask``) of ``change``, boxed tightly."""
    colours = np.zeros((*change.mask.shape, 3), np.uint8)
    colours[change.mask] = change.colours
    rows, cols = np.flatnonzero(keep.any(1)), np.flatnonzero(keep.any(0))
    r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    y0, _, x0, _ = change.box
    mask = keep[r0:r1, c0:c1]
    return Change((y0 + r0, y0 + r1, x0 + c0, x0 + c1), mask, colours[r0:r1, c0:c1][mask])


def _merged(under: Change, over: Change) -> Change:
    """One change that pastes ``under`` and then ``over`` (their boxes joined)."""
    y0, y1 = min(under.box[0], over.box[0]), max(under.box[1], over.box[1])
    x0, x1 = min(under.box[2], over.box[2]), max(under.box[3], over.box[3])
    mask = np.zeros((y1 - y0, x1 - x0), bool)
    colours = np.zeros((y1 - y0, x1 - x0, 3), np.uint8)
    for part in (under, over):
        b0, b1, c0, c1 = part.box
        mask[b0 - y0:b1 - y0, c0 - x0:c1 - x0] |= part.mask
        colours[b0 - y0:b1 - y0, c0 - x0:c1 - x0][part.mask] = part.colours
    return Change((y0, y1, x0, x1), mask, colours[mask])


def _patch_rms(framebuffer: np.ndarray, patch: np.ndarray) -> np.ndarray:
    """RMS difference in 8-bit levels between ``patch`` ``(h, w, 3)`` and every place of ``framebuffer``
    ``(H, W, 3)``: ``(H - h + 1, W - w + 1)`` (one correlation, as sums of squares expand)."""
    import torch

    # float32 in [0, 1] (float64 convolutions are ~50x slower on a CPU); the cancellation error is far
    # below the level tolerance a caller compares with
    img = torch.tensor(framebuffer, dtype=torch.float32).div(255).permute(2, 0, 1)[None]  # (1, 3, H, W)
    ker = torch.tensor(patch, dtype=torch.float32).div(255).permute(2, 0, 1)[None]        # (1, 3, h, w)
    return _rms_map(img, ker)[0]


def _rms_map(image: Any, kernels: Any) -> np.ndarray:
    """``(K, R - h + 1, C - w + 1)`` RMS differences in 8-bit levels between each of ``kernels``
    ``(K, 3, h, w)`` and every place of ``image`` ``(1, 3, R, C)`` (float tensors in [0, 1]): one
    correlation per term, as sums of squares expand."""
    import torch
    from torch.nn import functional as F

    n = kernels.shape[1] * kernels.shape[2] * kernels.shape[3]
    ssd = (F.conv2d(image ** 2, torch.ones_like(kernels[:1])) - 2 * F.conv2d(image, kernels)
           + (kernels ** 2).sum((1, 2, 3))[None, :, None, None]).clamp(min=0)[0]
    return (ssd / n).sqrt().mul(255).numpy()


def _places(framebuffer: np.ndarray, kernels: Any, rows: tuple[int, int], cols: tuple[int, int],
            tol: float) -> list[tuple[int, int] | None]:
    """For each of ``kernels`` (``(K, 3, h - 2, w - 2)`` float tensor: the 3x3 means of K ``(h, w)``
    pictures, in [0, 1]): the top-left corner ``(row, col)``, within ``rows`` and ``cols`` (inclusive
    ranges, clipped to the frame), where ``framebuffer`` ``(H, W, 3)`` shows its picture (RMS of 3x3
    means within ``tol`` levels): the closest fit, if every fit is within ``FOLLOW_SPREAD`` px of the
    others; None otherwise."""
    import torch

    k, h, w = kernels.shape[0], kernels.shape[2] + 2, kernels.shape[3] + 2
    fh, fw = framebuffer.shape[:2]
    top, left = max(0, rows[0]), max(0, cols[0])
    bottom, right = min(fh - h, rows[1]), min(fw - w, cols[1])
    if bottom < top or right < left:
        return [None] * k
    seen = _box_mean(framebuffer[top:bottom + h, left:right + w])  # (rows, cols, 3) in levels
    img = torch.from_numpy(seen / 255).float().permute(2, 0, 1)[None].contiguous()  # (1, 3, R, C)
    positions = (img.shape[2] - kernels.shape[2] + 1, img.shape[3] - kernels.shape[3] + 1)

    # first on every third row and column of both (3x3 means are smooth: a place within a pixel of a fit
    # is near it too, at an 81st of the work), then in full where that came near
    coarse = _rms_map(img[:, :, ::3, ::3].contiguous(), kernels[:, :, ::3, ::3].contiguous())
    maybe = np.flatnonzero(coarse.reshape(k, -1).min(1) <= tol + HOVER_COARSE)
    full = np.full((k, *positions), np.inf, np.float32)
    if len(maybe):
        full[maybe] = _rms_map(img, kernels[maybe])
    out: list[tuple[int, int] | None] = []
    for r in full:
        fits = np.argwhere(r <= tol)
        if not len(fits) or (fits.max(0) - fits.min(0)).max() > 2 * FOLLOW_SPREAD:
            out.append(None)
            continue
        y, x = np.unravel_index(np.argmin(r), r.shape)
        out.append((top + int(y), left + int(x)))
    return out


def _recoloured(framebuffer: np.ndarray, at: tuple[int, int], before: np.ndarray, after: np.ndarray,
                past: Past | None = None) -> Change | None:
    """A stored hover (``before`` -> ``after``, ``(h, w, 3)`` each) drawn at ``at`` (top-left) as a
    recolouring of ``framebuffer``'s own pixels (:func:`_lut_apply`), so the item keeps its own text at
    its own pixel phase; any other item lit in the same columns within ``HOVER_REACH`` rows (rows
    mostly of the colour it lights with) is unlit, across the lit bar's width: as the latest of the
    ``HOVER_PAST`` frames before (``past(k)``, :data:`Past`) that showed it unlit did, else by the inverse
    recolouring. A menu has one lit item. None where nothing changes."""
    y0, x0 = at
    h, w = before.shape[:2]
    y1, x1 = y0 + h, x0 + w
    lit = _mode_colour(after.reshape(-1, 3))
    out = framebuffer.copy()
    out[y0:y1, x0:x1] = _lut_apply(before, after, framebuffer[y0:y1, x0:x1])
    top, bottom = max(0, y0 - HOVER_REACH), min(framebuffer.shape[0], y1 + HOVER_REACH)
    rows = top + np.flatnonzero((framebuffer[top:bottom, x0:x1] == lit).all(-1).mean(1) >= 0.5)
    rows = rows[(rows < y0) | (rows >= y1)]
    if len(rows):  # (a span taller than an item is not a lit item: a selection, a window's title)
        # the lit bar's whole width (another menu's item, whose hover this is, may be narrower or wider)
        cols = np.flatnonzero((framebuffer[rows] == lit).all(-1).any(0))
        c0, c1 = max(0, int(cols[0]) - 1), min(framebuffer.shape[1], int(cols[-1]) + 2)
        strict = rows
        # the bar's rows between them (its text rows are less than half lit) and two either side (its edges)
        spans = [g for g in np.split(rows, np.flatnonzero(np.diff(rows) > BAR_GAP) + 1) if g[-1] - g[0] < HOVER_ROWS]
        rows = np.unique(np.concatenate([np.arange(max(top, g[0] - 2), min(bottom, g[-1] + 3)) for g in spans]
                                        + [np.zeros(0, np.int64)]))
        rows = rows[(rows < y0) | (rows >= y1)]
        # as the latest earlier frame showed them unlit (``past``: exact), else by the inverse recolouring
        frames = (past(k) if past is not None else None for k in range(1, HOVER_PAST + 1))
        unlit = next((f for f in frames if f is not None and ((f[strict, c0:c1] == lit).all(-1).mean(1) < 0.5).all()),
                     None)
        out[rows, c0:c1] = unlit[rows, c0:c1] if unlit is not None else _lut_apply(after, before,
                                                                                   framebuffer[rows, c0:c1])
    return _difference(framebuffer, out)


def _difference(framebuffer: np.ndarray, out: np.ndarray) -> Change | None:
    """The change that turns ``framebuffer`` into ``out`` (both ``(H, W, 3)`` uint8); None where they are equal."""
    changed = (out != framebuffer).any(-1)
    if not changed.any():
        return None
    rr, cc = np.flatnonzero(changed.any(1)), np.flatnonzero(changed.any(0))
    box = (int(rr[0]), int(rr[-1]) + 1, int(cc[0]), int(cc[-1]) + 1)
    mask = changed[box[0]:box[1], box[2]:box[3]]
    return Change(box, mask, out[box[0]:box[1], box[2]:box[3]][mask])


def _mode_colour(colours: np.ndarray) -> np.ndarray:
    """The most frequent of ``colours`` ``(n, 3)`` uint8 (ties: the lowest)."""
    packed = colours.astype(np.int32) @ np.array([1 << 16, 1 << 8, 1], np.int32)  # 1-D: np.unique's fast path
    values, counts = np.unique(packed, return_counts=True)
    top = int(values[np.argmax(counts)])
    return np.array([top >> 16, (top >> 8) & 255, top & 255], np.uint8)


def _lut_apply(source: np.ndarray, target: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """``pixels`` ``(..., 3)`` uint8 recoloured as ``source`` ``(h, w, 3)`` became ``target`` (same shape):
    each pixel takes the colour that most ``source`` pixels of the nearest ``source`` colour became,
    where that colour is within ``LUT_DISTANCE`` (Euclidean, 8-bit levels); other pixels are kept."""
    keys, inverse = np.unique(source.reshape(-1, 3), axis=0, return_inverse=True)
    outs, out_inverse = np.unique(target.reshape(-1, 3), axis=0, return_inverse=True)
    pairs, counts = np.unique(inverse.reshape(-1) * len(outs) + out_inverse.reshape(-1), return_counts=True)
    best = np.full(len(keys), -1)
    best_count = np.zeros(len(keys), np.int64)
    for pair, count in zip(pairs, counts, strict=True):  # the majority colour per key
        k, o = divmod(int(pair), len(outs))
        if count > best_count[k]:
            best[k], best_count[k] = o, count
    flat = pixels.reshape(-1, 3).astype(np.float32)
    dist = ((flat[:, None, :] - keys[None].astype(np.float32)) ** 2).sum(-1)  # (n, keys)
    nearest = dist.argmin(1)
    ok = dist[np.arange(len(flat)), nearest] <= LUT_DISTANCE ** 2
    result = pixels.reshape(-1, 3).copy()
    result[ok] = outs[best[nearest[ok]]]
    return result.reshape(pixels.shape)


def _mean_gap(picture: np.ndarray, patch: np.ndarray) -> np.ndarray:
    """``(H - h + 1, W - w + 1)``: at each place of ``picture`` ``(H, W, 3)`` the RMS over channels of the
    gap between its mean colour under ``patch`` ``(h, w, 3)`` and the patch's own: a lower bound of the
    two's RMS difference (:func:`_patch_rms`; a mean square is at least its mean's square), from a
    summed-area table, so a search whose every place is farther than its tolerance is skipped."""
    means = _box_mean(picture, patch.shape[:2], np.float64)  # float64: sums of a whole region's levels
    return np.sqrt(((means - patch.reshape(-1, 3).astype(np.float64).mean(0)) ** 2).mean(-1))


def _box_mean(picture: np.ndarray, k: int | tuple[int, int] = 3, dtype: Any = np.float32) -> np.ndarray:
    """``(H, W, 3)`` -> ``(H - kh + 1, W - kw + 1, 3)``: the mean of each ``kh`` x ``kw`` pixels (``k``: both
    sides, or ``(kh, kw)``; stride 1), in ``dtype``."""
    kh, kw = (k, k) if isinstance(k, int) else k
    c = np.pad(picture.astype(dtype).cumsum(0).cumsum(1), ((1, 0), (1, 0), (0, 0)))  # summed-area table
    return (c[kh:, kw:] - c[:-kh, kw:] - c[kh:, :-kw] + c[:-kh, :-kw]) / (kh * kw)


def _store_change(before: np.ndarray, after: np.ndarray, ids: dict[bytes, int], boxes: list, masks: list,
                  colours: list, befores: list) -> int:
    """The id of the change ``before -> after`` (stored once however often it recurs); -1 when the two
    are the same picture (distinct frames of a recording can be equal at the model's size). A small
    change also keeps its box's pixels before it (the first time it is seen)."""
    changed = np.any(before != after, axis=-1)
    if not changed.any():
        return -1
    rows, cols = np.flatnonzero(changed.any(1)), np.flatnonzero(changed.any(0))
    box = (int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1)
    mask = changed[box[0]:box[1], box[2]:box[3]]
    new = after[box[0]:box[1], box[2]:box[3]][mask]
    digest = hashlib.blake2b(np.asarray(box, np.int32).tobytes() + np.packbits(mask).tobytes() + new.tobytes(),
                             digest_size=16).digest()
    if digest not in ids:
        ids[digest] = len(boxes)
        boxes.append(box)
        masks.append(np.packbits(mask.ravel()))
        colours.append(new)
        keep = box[1] - box[0] <= KEEP_BEFORE[0] and box[3] - box[2] <= KEEP_BEFORE[1]
        befores.append(before[box[0]:box[1], box[2]:box[3]].reshape(-1, 3) if keep else np.zeros((0, 3), np.uint8))
    return ids[digest]


def _click_item(before: np.ndarray, after: np.ndarray, press: tuple[int, int]
                ) -> tuple[tuple[int, int, int, int], np.ndarray, np.ndarray] | None:
    """The icon a left click at ``press`` (row, col) lit between framebuffers ``before`` and ``after``
    ``(H, W, 3)`` uint8: the changed part nearest the press (changed pixels within 2 px of one another
    are one part), if it lies within ``ITEM_REACH`` px of it and is an icon lit (``ITEM_SIDE``, ``ITEM_LIT``,
    ``ITEM_GAIN``, its new pixels' most frequent colour saturated); as its box with a 1 px margin
    ``(y0, y1, x0, x1)`` and the box's pixels before and after ``(h, w, 3)`` uint8 (only the part's pixels
    changed). None where the click lit no icon (a menu opened, a window raised, a field focused)."""
    from scipy import ndimage

    diff = (before != after).any(-1)
    py, px = press
    parts, _ = ndimage.label(ndimage.binary_dilation(diff, iterations=2))
    top, left = max(0, py - ITEM_REACH), max(0, px - ITEM_REACH)
    near = parts[top:py + ITEM_REACH + 1, left:px + ITEM_REACH + 1]
    ys, xs = np.nonzero(near)
    if not len(ys):
        return None
    part = (parts == near[ys, xs][np.argmin((ys + top - py) ** 2 + (xs + left - px) ** 2)]) & diff
    rows, cols = np.flatnonzero(part.any(1)), np.flatnonzero(part.any(0))
    y0, y1 = max(0, int(rows[0]) - 1), min(diff.shape[0], int(rows[-1]) + 2)
    x0, x1 = max(0, int(cols[0]) - 1), min(diff.shape[1], int(cols[-1]) + 2)
    if min(y1 - y0, x1 - x0) < ITEM_SIDE[0] + 2 or max(y1 - y0, x1 - x0) > ITEM_SIDE[1]:
        return None
    was = before[y0:y1, x0:x1].copy()
    now = was.copy()
    keep = part[y0:y1, x0:x1]
    now[keep] = after[y0:y1, x0:x1][keep]
    lit = _mode_colour(now[keep])
    if int(lit.max()) - int(lit.min()) < HIGHLIGHT_SATURATION:
        return None
    saturated = lambda p: float((p.max(-1).astype(int) - p.min(-1) >= HIGHLIGHT_SATURATION).mean())  # noqa: E731
    if saturated(now) < ITEM_LIT or saturated(now) - saturated(was) < ITEM_GAIN:
        return None
    return (y0, y1, x0, x1), was, now


def _light(pixels: np.ndarray) -> bool:
    """Whether ``pixels`` ``(..., 3)`` uint8 lie on a light page: their most frequent colour's grey is at least
    ``LIGHT_PAGE`` (a file manager's white view, not the desktop's wallpaper)."""
    return float(_mode_colour(pixels.reshape(-1, 3)).astype(np.float32).mean()) >= LIGHT_PAGE


def _lit_colour(before: np.ndarray, after: np.ndarray) -> np.ndarray | None:
    """The colour a stored icon (``before`` -> ``after``, ``(h, w, 3)`` uint8) is lit with ``(3,)`` uint8: the
    most frequent of its pixels that changed to a saturated colour (``HIGHLIGHT_SATURATION``); None if none."""
    lit = (after.max(-1).astype(int) - after.min(-1) >= HIGHLIGHT_SATURATION) & (after != before).any(-1)
    return _mode_colour(after[lit]) if lit.any() else None


def _selected_label(out: np.ndarray, framebuffer: np.ndarray, at: tuple[int, int], after: np.ndarray,
                    lit: np.ndarray) -> None:
    """Draw the label of an icon lit at ``at`` (top-left; ``after`` ``(h, w, 3)`` uint8 is a stored icon lit
    in colour ``lit``, :func:`_lit_colour`) into ``out`` as a selected label: the rows the stored label
    filled with the lit colour (the lowest run of rows at least ``LABEL_ROWS`` of it), across the present
    label's ink (grey below ``LIGHT_PAGE``, 2 px either side) filled with that colour, the ink drawn white
    by its darkness; only on a light page (:func:`_light`: on the desktop's wallpaper the glyphs are light
    already, and the recolouring draws them). The present word
    is another than the stored one; recoloured by the stored pixels, its glyphs would go to the stored
    word's colours where they overlap, and stay dark elsewhere."""
    rows = np.flatnonzero((after == lit).all(-1).mean(1) >= LABEL_ROWS)
    if not len(rows):
        return
    label = np.split(rows, np.flatnonzero(np.diff(rows) > LABEL_GAP) + 1)[-1]
    y, x = at
    r0, r1 = y + int(label[0]), y + int(label[-1]) + 1
    w = after.shape[1]
    if not _light(framebuffer[r0:r1, x:x + w]):
        return  # light glyphs on a dark page (the desktop's wallpaper): the recolouring draws them as they are
    ink = np.flatnonzero((framebuffer[r0:r1, x:x + w].astype(np.float32).mean(-1) < LIGHT_PAGE).any(0))
    if not len(ink):
        return
    c0, c1 = x + max(0, int(ink[0]) - 2), x + min(w, int(ink[-1]) + 3)
    alpha = np.clip(1 - framebuffer[r0:r1, c0:c1].astype(np.float32).mean(-1, keepdims=True) / 255, 0, 1)
    out[r0:r1, c0:c1] = (lit.astype(np.float32) * (1 - alpha) + 255 * alpha).round().astype(np.uint8)


def _unselected(out: np.ndarray, framebuffer: np.ndarray, box: tuple[int, int, int, int], lit: np.ndarray,
                past: Past | None, others: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]] = (),
                tol: float = 0.0) -> None:
    """Unselect in ``out`` the icons ``framebuffer`` shows selected outside ``box`` (the one a click lights
    now in colour ``lit``, ``(y0, y1, x0, x1)``): a view has one selected icon. A selected label is a run
    of rows of the selection colour at most ``ITEM_SIDE`` px tall and twice as wide; it and the icon above
    it (as tall as the icon lit now) take the pixels of the
    latest of the ``HOVER_PAST`` frames before (``past(k)``, :data:`Past`) that showed the label's place
    without the colour, where they differ; one selected since before the earliest kept frame is unlit by
    the colours of the stored icon (of ``others``, as :meth:`TransitionMemory._items` gives them) whose lit
    look it shows within ``tol`` levels (:func:`_unlit`; none given: it stays)."""
    from scipy import ndimage

    if past is None and not others:
        return
    shown = (framebuffer == lit).all(-1)
    y0, y1, x0, x1 = box
    lighting = np.zeros(shown.shape, bool)  # the icon lit now: never unselected
    lighting[y0:y1, x0:x1] = True
    shown &= ~lighting
    if not shown.any():
        return
    parts, _ = ndimage.label(ndimage.binary_dilation(shown, iterations=2))
    frames = [past(k) for k in range(1, HOVER_PAST + 1)] if past is not None else []
    for i, (rows, cols) in enumerate(ndimage.find_objects(parts)):
        label = shown[rows, cols] & (parts[rows, cols] == i + 1)
        lit_rows, lit_cols = np.flatnonzero(label.any(1)) + rows.start, np.flatnonzero(label.any(0)) + cols.start
        # its lit rows and columns (the part's box is 2 px wider: the dilation)
        r0, r1, c0, c1 = int(lit_rows[0]), int(lit_rows[-1]) + 1, int(lit_cols[0]), int(lit_cols[-1]) + 1
        if r1 - r0 > ITEM_SIDE[1] or cols.stop - cols.start > 2 * ITEM_SIDE[1]:
            continue  # a window's selected text, a title bar: not an icon's label
        earlier = next((f for f in frames if f is not None and not (f[r0:r1, cols] == lit).all(-1).any()), None)
        if earlier is not None:
            top = max(0, min(r0, r1 - (y1 - y0)))
            keep = (earlier[top:r1, cols] != framebuffer[top:r1, cols]).any(-1) & ~lighting[top:r1, cols]
            out[top:r1, cols][keep] = earlier[top:r1, cols][keep]
        else:
            _unlit(out, framebuffer, (r0, r1, c0, c1), lit, others, lighting, tol)


def _unlit(out: np.ndarray, framebuffer: np.ndarray, label: tuple[int, int, int, int], lit: np.ndarray,
           items: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], lighting: np.ndarray, tol: float) -> None:
    """Unselect in ``out`` the icon whose selected label ``framebuffer`` shows at ``label`` ``(r0, r1, c0, c1)``
    where no earlier frame showed it unselected: of the stored icons lit in colour ``lit`` (``items``, each
    ``(before, after)`` ``(h, w, 3)`` and its colour), the one whose lit look shows closest around the label (within ``tol``
    levels RMS) gives the icon its inverse recolouring (``after`` -> ``before``), and the label's pixels,
    drawn as :func:`_selected_label` draws them, take their grey back (the bar's colour the page's white,
    the white name dark). ``lighting`` ``(H, W)`` bool: the pixels of the icon lit now, kept."""
    r0, r1, c0, c1 = label
    H, W = framebuffer.shape[:2]
    best = None
    for before, after, colour in items:
        h, w = after.shape[:2]
        if not np.array_equal(colour, lit):
            continue
        top, left = max(0, r1 - h - 2), max(0, c0 - w)
        region = framebuffer[top:min(H, r0 + h + 2), left:min(W, c1 + w)]
        if region.shape[0] < h or region.shape[1] < w:
            continue
        rms = _patch_rms(region, after)
        y, x = np.unravel_index(np.argmin(rms), rms.shape)
        if rms[y, x] <= tol and (best is None or rms[y, x] < best[0]):
            best = (float(rms[y, x]), top + int(y), left + int(x), before, after)
    if best is None:
        return  # not a stored icon's look: a list's selected row, a sidebar's place
    _, y, x, before, after = best
    h, w = after.shape[:2]
    unlit = _lut_apply(after, before, framebuffer[y:y + h, x:x + w])
    picture = out.copy()
    picture[y:y + h, x:x + w] = unlit
    if _light(before):  # the label as _selected_label drew it: its grey from its blend
        # a pixel is lit * (1 - a) + white * a for a grey of 255 * (1 - a)
        channel = int(np.argmax(255 - lit.astype(int)))
        bar = framebuffer[r0:r1, c0:c1, channel].astype(np.float32)
        a = np.clip((bar - float(lit[channel])) / max(1.0, 255.0 - float(lit[channel])), 0, 1)
        picture[r0:r1, c0:c1] = np.repeat((255 * (1 - a)).round().astype(np.uint8)[..., None], 3, axis=-1)
    keep = np.zeros(lighting.shape, bool)
    keep[min(y, r0):max(y + h, r1), min(x, c0):max(x + w, c1)] = True
    keep &= ~lighting
    out[keep] = picture[keep]


def _flat_pixels(parts: Sequence[np.ndarray]) -> np.ndarray:
    """Pictures or pixel lists (each ``(..., 3)`` uint8) as one ``(n, 3)`` array, row-major each, in order."""
    return np.concatenate([p.reshape(-1, 3) for p in parts]) if len(parts) else np.zeros((0, 3), np.uint8)


def _pack_items(items: list) -> dict[str, np.ndarray]:
    """``click_items``' icons (:func:`_click_item`, each with the patch under its press) as flat arrays:
    boxes ``(K, 4)`` int16, patches ``(K, 32)`` uint8, the boxes' pixels before and after ``(n, 3)``."""
    return {"item_boxes": np.asarray([it[0] for it in items], np.int16).reshape(-1, 4),
            "item_patches": np.asarray([it[3] for it in items], np.uint8).reshape(-1, PATCH_GRID[0] * PATCH_GRID[1]),
            "item_befores": _flat_pixels([it[1] for it in items]), "item_afters": _flat_pixels([it[2] for it in items])}


def _pack_changes(boxes: list, masks: list, colours: list, befores: list) -> dict[str, np.ndarray]:
    """The changes as flat arrays with offsets (one ``npz`` entry per kind, not per change)."""
    offsets = lambda parts: np.cumsum([0] + [len(p) for p in parts]).astype(np.int64)  # noqa: E731
    return {"boxes": np.asarray(boxes, np.int16).reshape(-1, 4),
            "masks": np.concatenate(masks) if masks else np.zeros(0, np.uint8), "mask_offsets": offsets(masks),
            "colours": _flat_pixels(colours), "colour_offsets": offsets(colours),
            "befores": _flat_pixels(befores), "before_offsets": offsets(befores)}


__all__ = ["Change", "TransitionMemory", "input_features", "thumbnail"]
