"""`edgedet doctor`: versions, GPU, TensorRT, ONNX Runtime providers, and what works here."""

from __future__ import annotations

import json

import click

from edgedet.cli.common import (
    check_json_path,
    json_report_option,
    print_json_option,
    write_json_report,
)


@click.command("doctor")
@json_report_option
@print_json_option
def doctor_cmd(json_path, print_json):
    """Report what this machine has and what edgedet can do on it."""
    from edgedet.doctor import advice, report

    check_json_path(json_path, [])  # fail before the probes, not after them
    r = report()
    tips = advice(r)
    if print_json:
        click.echo(json.dumps({**r, "advice": tips}, indent=2))
    else:
        _print_text(r, tips)
    if json_path:
        write_json_report(json_path, {**r, "advice": tips}, err=print_json)


def _print_text(r: dict, tips: list[str]) -> None:
    click.echo(f"edgedet {r['edgedet']}  python {r['python']}  {r['platform']}")
    for name, version in r["packages"].items():
        click.echo(f"  {name:24s} {version or '-'}")
    ort = r["onnxruntime"]
    click.echo(
        f"  {'onnxruntime':24s} {ort['version'] or '-'}  providers:"
        f" {', '.join(ort['providers']) or '-'}"
    )
    trt = r["tensorrt"]
    click.echo(
        f"  {'tensorrt':24s} {trt['version'] or '-'}"
        + (f" ({trt['module']}, builder: {trt['builder']})" if trt["version"] else "")
    )
    click.echo(f"  {'nvcc':24s} {r['nvcc'] or '-'}")
    if r["gpus"]:
        for g in r["gpus"]:
            click.echo(
                f"  GPU: {g['name']} (compute {g['compute_capability']}, driver {g['driver']},"
                f" {g['memory']})"
            )
    else:
        click.echo("  GPU: none visible")
    click.echo("can:")
    for what, ok in r["can"].items():
        click.echo(f"  [{'x' if ok else ' '}] {what}")
    if tips:
        click.echo("to do:")
        for t in tips:
            click.echo(f"  - {t}")
