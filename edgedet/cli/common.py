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
