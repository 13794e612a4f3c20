"""`edgedet inspect`: what a TensorRT engine needs, whether it runs here, and its I/O and layers."""

from __future__ import annotations

import json

import click

from edgedet.cli.common import (
    check_json_path,
    json_report_option,
    print_json_option,
    write_json_report,
)


@click.command("inspect")
@click.argument("engine", type=click.Path(dir_okay=False))
@click.option(
    "--layers",
    is_flag=True,
    help="Per-layer information from TensorRT's engine inspector (full TensorRT).",
)
@click.option(
    "--plugin",
    "plugins",
    multiple=True,
    type=click.Path(),
    help="Extra plugin library or folder to search.",
)
@json_report_option
@print_json_option
def inspect_cmd(engine, layers, plugins, json_path, print_json):
    """Report on ENGINE: how it was built, whether this machine can load it (and why not)."""
    from edgedet.trt.inspect import inspect_engine

    check_json_path(json_path, [engine, f"{engine}.json"])  # before the inspection, not after
    r = inspect_engine(engine, layers=layers, plugin_paths=list(plugins))
    if print_json:
        click.echo(json.dumps(r, indent=2, default=str))
    else:
        _print_text(r, layers)
    if json_path:
        write_json_report(json_path, r, err=print_json)


def _print_text(r: dict, layers: bool) -> None:
    b, m = r["built"], r["manifest"]
    click.echo(f"{r['engine']}: {r['bytes'] / 1e6:.1f} MB")
    if m:
        click.echo(
            f"  model     {m['model']}, input {m['input']} {m['input_dtype']}, outputs"
            f" {', '.join(m['outputs'])}"
        )
    if b:
        gpu = b.get("gpu") or {}
        click.echo(
            f"  built     TensorRT {b['version']} ({b.get('module')}), {gpu.get('name', '?')}"
            f" compute {gpu.get('compute_capability', '?')}, {b.get('precision')},"
            f" version-compatible {b.get('version_compatible')}, hardware"
            f" {b.get('hardware_compatibility_level')}"
        )
        for p in b.get("plugins", []):
            click.echo(
                f"  plugin    {p['file']} sha256 {str(p.get('sha256'))[:12]}..."
                + (" (embedded)" if p.get("serialized") else "")
            )
    mach = r["machine"]
    click.echo(
        f"  here      TensorRT {mach.get('tensorrt', '-')} ({mach.get('flavour', '-')}), "
        f"GPU {mach.get('gpu', 'none')} {mach.get('compute_capability', '')}"
    )
    click.echo(f"  can load  {'yes' if r['can_load_here'] else 'no'}")
    for reason in r["reasons"]:
        click.echo(f"    - {reason}")
    for note in r["notes"]:
        click.echo(f"  note      {note}")
    for t in r.get("io", []):
        click.echo(
            f"  {'input ' if t['input'] else 'output'}    {t['name']} {t['dtype']} {t['shape']}"
            + (f" profile {t['profile']}" if t["profile"] else "")
        )
    if layers and "layers" in r:
        click.echo(
            json.dumps(r["layers"], indent=2)
            if not isinstance(r["layers"], str)
            else f"  layers    {r['layers']}"
        )
