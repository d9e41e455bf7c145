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
