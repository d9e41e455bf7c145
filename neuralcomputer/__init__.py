"""Neural Computers: video diffusion models that are the computer.

Stages, each importing only the ones before it (``tests/test_layout.py`` checks it, and that no module
imports itself back through others)::

    errors
    data            terminal/ (CLIGen) and desktop/ (GUIWorld) beside the shared dataset format
    models, diffusion, eval   networks / the noise process and samplers / metrics and reports over arrays
    config, pipelines         presets / model + sampler + I/O
    train, runtime            the training loop / the neural computer you use (reset/step, serve)
    experiments               the paper's tables as commands
    bench, demo               benchmarks / the zero-argument demo
    cli                       ``ncomp``
"""

__version__ = "0.1.0"
