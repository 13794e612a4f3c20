"""`edgedet build`: an edgedet ONNX file -> TensorRT engine (plain plan file) + manifest."""

from __future__ import annotations

import warnings
from pathlib import Path

import click

from edgedet.cli.common import echo_progress
from edgedet.errors import InputError, require


@click.command("build")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False),
    help="Engine file to write (.engine).",
)
@click.option(
    "--batch", help="N or min,opt,max for a dynamic-batch ONNX (default 1,1,1), e.g. 1,4,8."
)
@click.option("--workspace", help="Builder workspace limit, e.g. 2G or 512M (default: TensorRT's).")
@click.option(
    "--timing-cache",
    type=click.Path(dir_okay=False),
    help="Read this timing cache if present; write it after.",
)
@click.option(
    "--opt-level", type=int, default=3, show_default=True, help="Builder optimisation level 0-5."
)
@click.option(
    "--version-compatible",
    is_flag=True,
    help="Plan that also runs on later TensorRT and the lean runtime.",
)
@click.option(
    "--exclude-lean-runtime",
    is_flag=True,
    help="With --version-compatible: do not embed the lean runtime.",
)
@click.option(
    "--hardware-compat",
    type=click.Choice(["none", "ampere_plus", "same_cc"]),
    default="none",
    show_default=True,
    help=(
        "Run on other GPUs: ampere_plus (CC 8.0+) or same_cc (same compute capability; TRT 10.10+)."
    ),
)
@click.option(
    "--plugin",
    "plugins",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="Plugin library to load (e.g. libedgedet_nms_plugin.so); repeatable.",
)
@click.option(
    "--dla",
    "dla_core",
    type=int,
    help="Build for this DLA core (Jetson), GPU fallback for the rest.",
)
@click.option(
    "--legacy-fp16",
    "legacy",
    flag_value="fp16",
    help="TensorRT 10.x only: weak typing + FP16 flag.",
)
@click.option(
    "--legacy-int8",
    "legacy",
    flag_value="int8",
    help="TensorRT 10.x only: weak typing + INT8/FP16 flags (Q/DQ model).",
)
@click.option("-v", "--verbose", is_flag=True, help="Show TensorRT's info messages.")
def build_cmd(
    model,
    output,
    batch,
    workspace,
    timing_cache,
    opt_level,
    version_compatible,
    exclude_lean_runtime,
    hardware_compat,
    plugins,
    dla_core,
    legacy,
    verbose,
):
    """Build MODEL (ONNX; precision comes from the file) into a TensorRT engine on this GPU."""
    from edgedet.onnx.engine.flags import BuildOptions, parse_size, validate
    from edgedet.onnx.engine.profiles import parse_batch

    opts = BuildOptions(
        parse_batch(batch),
        parse_size(workspace),
        timing_cache,
        opt_level,
        version_compatible,
        exclude_lean_runtime,
        hardware_compat,
        list(plugins),
        dla_core,
        legacy,
        verbose,
    )
    validate(opts)
    if not Path(model).is_file():
        raise InputError(f"ONNX file {model} does not exist")
    # onnx only: the device needs no torch (edgedet[build])
    require("onnx", "build", "edgedet build")
    from edgedet.onnx.engine.build import build_engine

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = build_engine(model, output, opts, say=echo_progress)
    for w in caught:
        if issubclass(w.category, UserWarning):
            click.echo(f"edgedet: warning: {w.message}", err=True)
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    t = result.manifest.tensorrt
    click.echo(
        f"wrote {result.path} ({result.path.stat().st_size / 1e6:.1f} MB) with TensorRT {t.version}"
        f" on {t.gpu.get('name', '?')} (compute {t.gpu.get('compute_capability', '?')}),"
        f" {t.precision}, input {list(result.manifest.input.shape)}, {result.seconds:.0f} s;"
        f" manifest {result.path}.json"
    )
