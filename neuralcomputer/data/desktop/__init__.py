"""GUIWorld's data: a real XFCE desktop recorded under actions.

:mod:`.xsession` starts and tears down Xvfb + XFCE, :mod:`.actor` drives it and logs what it did,
:mod:`.policies` (random), :mod:`.scripted` (+ :mod:`.scripted_tasks`, :mod:`.task_context`) and
:mod:`.agent` decide what to do, :mod:`.collect` records episodes into the dataset format, and
:mod:`.actions`, :mod:`.cursor`, :mod:`.a11y`, :mod:`.episode` are the formats and readers around them.
A new desktop policy goes in :mod:`.policies` (or a module of its own that registers there).
"""
