"""`edgedet deploy deepstream|triton`: configs for the servers users already run
(edgedet/deploy/)."""

from __future__ import annotations

import click


@click.group("deploy")
def deploy_group() -> None:
    """Write a DeepStream config folder or a Triton model repository for a model."""


@deploy_group.command("deepstream")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option(
    "-o",
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder for the model, labels.txt, config_infer_primary.txt and deepstream_app.txt.",
)
@click.option(
    "--batch-size",
    type=int,
    help=(
        "Batch for nvinfer/streammux (default: the model's, or the engine's profile maximum, or 1)."
    ),
)
@click.option(
    "--uri",
    default=None,
    help="Source URI for deepstream_app.txt (default: DeepStream's sample video).",
)
def deepstream_cmd(model, out_dir, batch_size, uri):
    """nvinfer config + labels + deepstream-app config for MODEL (NMS in the graph)."""
    from edgedet.deploy import open_artifact
    from edgedet.deploy.deepstream import SAMPLE_URI, run_command, write_deepstream

    paths = write_deepstream(model, out_dir, batch_size, uri or SAMPLE_URI)
    click.echo("wrote " + ", ".join(str(p) for p in paths))
    click.echo(f"run on the device: cd {out_dir} && {run_command(open_artifact(model))}")


@deploy_group.command("triton")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option(
    "-o",
    "--out",
    "repo",
    required=True,
    type=click.Path(file_okay=False),
    help="Model repository folder.",
)
@click.option("--name", help="Model name in the repository (default: the file's stem).")
@click.option(
    "--max-batch",
    type=int,
    help="max_batch_size for a dynamic-batch ONNX file (default 8; engines: the profile maximum).",
)
@click.option(
    "--instances",
    type=int,
    default=1,
    show_default=True,
    help="Model instances (instance_group count).",
)
@click.option(
    "--kind",
    type=click.Choice(["gpu", "cpu"]),
    default="gpu",
    show_default=True,
    help="Instance kind.",
)
@click.option(
    "--queue-delay-us",
    type=int,
    default=100,
    show_default=True,
    help="dynamic_batching max_queue_delay_microseconds.",
)
def triton_cmd(model, repo, name, max_batch, instances, kind, queue_delay_us):
    """A Triton model repository entry (config.pbtxt, 1/model.*, labels.txt) for MODEL."""
    from pathlib import Path

    from edgedet.deploy import open_artifact
    from edgedet.deploy.triton import server_notes, write_triton

    paths = write_triton(model, repo, name, max_batch, instances, kind, queue_delay_us)
    click.echo("wrote " + ", ".join(str(p) for p in paths))
    click.echo(server_notes(open_artifact(model), Path(repo)).rstrip())
