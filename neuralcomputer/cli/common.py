"""What every ``ncomp`` command group shares: one-line errors, and option parsers used by several groups."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from neuralcomputer.errors import NCError


class _Group(click.Group):
    """Turns the project's errors into one clear line and exit status 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except NCError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)


def _int_list(text: str, option: str) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]``, or one clear error naming the option."""
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise NCError(f"{option} {text!r}: expected comma-separated integers, e.g. 0,1,2") from None


def _model_specs(specs: tuple[str, ...]) -> dict[str, Path]:
    """``--model NAME=PATH`` options (a bare PATH is named after its folder) -> name -> path."""
    models: dict[str, Path] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep:
            name, path = Path(spec).name, spec
        if not name or not path:
            raise NCError(f"--model {spec!r}: expected NAME=PATH")
        if name in models:
            raise NCError(f"--model {spec!r}: the name {name!r} is given twice")
        models[name] = Path(path)
    return models


def _size(value: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"{value!r}: expected WIDTHxHEIGHT, e.g. 1024x768") from None
    if not (64 <= w <= 8192 and 64 <= h <= 8192):
        raise click.BadParameter(f"{value!r}: width and height must be within 64..8192")
    return w, h


def desktop_eval_options(episodes: int, data_help: str):
    """The options every desktop evaluation shares (model, held-out data, report folder, split, how many
    episodes), so ``ncomp eval desktop`` and ``ncomp eval desktop-targets`` read alike."""
    def wrap(f):
        for option in reversed((
            click.option("--model", required=True, type=click.Path(exists=True, path_type=Path),
                         help="Desktop model: run folder, checkpoint or model directory."),
            click.option("--data", "dataset", required=True,
                         type=click.Path(exists=True, file_okay=False, path_type=Path), help=data_help),
            click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
                         help="Report folder."),
            click.option("--split", default="test", show_default=True,
                         help="train, val, test or all (a held-out dataset)."),
            click.option("--episodes", type=click.IntRange(1), default=episodes, show_default=True),
        )):
            f = option(f)
        return f
    return wrap
