"""`edgedet plugin build`: compile the EdgeDetNMS TensorRT plugin against this machine's
TensorRT."""

from __future__ import annotations

import click

from edgedet.cli.common import echo_progress


@click.group("plugin")
def plugin_group():
    """TensorRT plugins edgedet provides (the EdgeDetNMS op)."""


@plugin_group.command("build")
@click.option(
    "--tensorrt-include",
    type=click.Path(file_okay=False),
    help=(
        "Folder with NvInfer.h and NvInferVersion.h (default: $TENSORRT_ROOT/include, then system"
        " folders)."
    ),
)
@click.option(
    "--cuda-home",
    type=click.Path(file_okay=False),
    help="CUDA toolkit folder whose bin/nvcc to use.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    help=(
        "Library to write (default: <cache>/plugins/<TensorRT"
        " major.minor>/libedgedet_nms_plugin.so)."
    ),
)
@click.option(
    "--arch",
    help=(
        "GPU architecture: e.g. sm_87, or portable (sm_80-sm_90 + compute_80 PTX, for engines built"
        " with --hardware-compat); default: this GPU, or nvcc's default without one."
    ),
)
def build_cmd(tensorrt_include, cuda_home, output, arch):
    """Compile libedgedet_nms_plugin.so (NMS kernels + IPluginV3) with nvcc."""
    from edgedet.trt.plugin_build import build_plugin

    result = build_plugin(tensorrt_include, output, arch, cuda_home, say=echo_progress)
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    t = result.manifest["tensorrt"]
    click.echo(
        f"wrote {result.path} ({result.path.stat().st_size / 1e6:.1f} MB) for TensorRT"
        f" {t['version']}, sha256 {result.manifest['sha256'][:12]}...; manifest {result.path}.json"
    )
