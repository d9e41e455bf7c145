"""Data stage: everything that records, renders and stores what the models learn from.

One room per system, beside what both share:

* ``terminal/`` (CLIGen): asciicast I/O, the VT emulator, the glyph renderer, the pty recorder and its
  session generators, clips, captions and the dataset build;
* ``desktop/`` (GUIWorld): Xvfb + XFCE desktops, the actor, policies (random, scripted, agent),
  collection, actions, the cursor, the accessibility tree;
* here: the dataset format (:mod:`.dataset`), video I/O (:mod:`.video`), the PyTorch view
  (:mod:`.torch_dataset`) and the vendored fonts.

Nothing here imports a later stage; ``terminal`` and ``desktop`` never import each other.
"""

