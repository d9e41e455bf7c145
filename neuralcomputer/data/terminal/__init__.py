"""CLIGen's data: real terminal sessions -> lossless, captioned clips.

``generators/`` author sessions, :mod:`.recorder` plays them in a real shell in a pty into asciicasts
(:mod:`.asciicast`), :mod:`.emulator` replays them, :mod:`.render` draws screens with the glyph atlas,
:mod:`.clips` cuts clips, :mod:`.captions` writes the three caption tiers and :mod:`.build` renders a
dataset. A new session generator goes in ``generators/``.
"""
