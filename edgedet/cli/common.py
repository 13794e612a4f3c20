"""Option parsing helpers shared by CLI commands."""

from __future__ import annotations

import click

from edgedet.errors import InputError


def int_list(text: str, name: str) -> list[int]:
    """'1,8' -> [1, 8]; InputError naming the option otherwise."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InputError(f"{name} takes comma-separated integers such as 1,8; got '{text}'") from None
    if not values or any(v < 1 for v in values):
        raise InputError(f"{name} needs positive integers; got '{text}'")
    return values


def echo_progress(message: str) -> None:
    click.echo(f"  {message}", err=True)


class Fraction(click.ParamType):
    """A finite number in 0..1 (scores, IoUs, matched fractions): NaN would silently disable a filter."""

    name = "fraction"

    def convert(self, value, param, ctx):
        import math

        try:
            x = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number; give a fraction in 0..1 such as 0.25", param, ctx)
        if not math.isfinite(x) or not 0.0 <= x <= 1.0:
            self.fail(f"{value!r} is not in 0..1; give a fraction such as 0.25", param, ctx)
        return x


FRACTION = Fraction()
POSITIVE = click.IntRange(min=1)
NON_NEGATIVE = click.IntRange(min=0)


def read_class_names(path: str) -> list[str]:
    """A --class-names file: UTF-8 text, one name per line; InputError naming the file otherwise."""
    from pathlib import Path

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"--class-names file {path} cannot be read ({exc.strerror})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"--class-names file {path} is not UTF-8 text; give a text file with one name per line") from None
    if "\x00" in text:
        raise InputError(f"--class-names file {path} is binary; give a text file with one name per line")
    names = [n.strip() for n in text.splitlines() if n.strip()]
    if not names:
        raise InputError(f"--class-names file {path} holds no names; give one name per line")
    return names
