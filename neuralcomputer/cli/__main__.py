"""``python -m neuralcomputer.cli``: the ``ncomp`` command (as torchrun and accelerate launch it)."""

from neuralcomputer.cli import main

main()
