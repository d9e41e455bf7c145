"""Training: the one loop (:mod:`.loop`, one CPU or many GPUs, EMA, accumulation, exact resume) and the
tasks it trains, one per system (:mod:`.cligen`: tokenizer + CLIGen, :mod:`.guiworld`: the desktop model),
picked by :func:`~neuralcomputer.train.tasks.make_task`."""
