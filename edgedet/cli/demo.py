"""`edgedet demo`: export, evaluate and benchmark the built-in nano model end to end."""

from __future__ import annotations

from pathlib import Path

import click

from edgedet.cli.common import POSITIVE
from edgedet.errors import require


@click.command("demo")
@click.option("--out", type=click.Path(file_okay=False), default="demo-output", show_default=True)
@click.option("--val-size", type=POSITIVE, help="Validation images (default: the standard split).")
@click.option("--iters", type=POSITIVE, default=50, show_default=True, help="Benchmark iterations per variant.")
def demo_cmd(out, val_size, iters):
    """Run nano through export -> ONNX Runtime, report mAP and latency in OUT/report.md."""
    require("torch", "export", "edgedet demo")
    from edgedet.fileio import check_writable
    from exporters.demo import DemoConfig, run_demo

    check_writable(Path(out) / "report.md")  # an unwritable folder fails now, not after the run

    run_demo(DemoConfig(Path(out), val_size, iters), say=lambda m: click.echo(m, err=True))
    click.echo((Path(out) / "report.md").read_text())
