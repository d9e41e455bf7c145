"""Neural Computers: video diffusion models that are the computer.

Stages (data flows one way): ``data`` -> ``models``/``diffusion`` -> ``train`` -> ``eval``/``runtime``.
"""

__version__ = "0.1.0"
