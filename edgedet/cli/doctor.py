"""`edgedet doctor`: versions, GPU, TensorRT, ONNX Runtime providers, and what works here."""

from __future__ import annotations

import json

import click


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def doctor_cmd(as_json):
    """Report what this machine has and what edgedet can do on it."""
    from edgedet.doctor import advice, report

    r = report()
    if as_json:
        click.echo(json.dumps({**r, "advice": advice(r)}, indent=2))
        return
    click.echo(f"edgedet {r['edgedet']}  python {r['python']}  {r['platform']}")
    for name, version in r["packages"].items():
        click.echo(f"  {name:24s} {version or '-'}")
    ort = r["onnxruntime"]
    click.echo(f"  {'onnxruntime':24s} {ort['version'] or '-'}  providers: {', '.join(ort['providers']) or '-'}")
    trt = r["tensorrt"]
    click.echo(f"  {'tensorrt':24s} {trt['version'] or '-'}" + (f" ({trt['module']}, builder: {trt['builder']})" if trt["version"] else ""))
    click.echo(f"  {'nvcc':24s} {r['nvcc'] or '-'}")
    if r["gpus"]:
        for g in r["gpus"]:
            click.echo(f"  GPU: {g['name']} (compute {g['compute_capability']}, driver {g['driver']}, {g['memory']})")
    else:
        click.echo("  GPU: none visible")
    click.echo("can:")
    for what, ok in r["can"].items():
        click.echo(f"  [{'x' if ok else ' '}] {what}")
    tips = advice(r)
    if tips:
        click.echo("to do:")
        for t in tips:
            click.echo(f"  - {t}")
