"""`edgedet bench`: per-stage latency statistics of an artifact."""

from __future__ import annotations

import click

from edgedet.cli.common import (
    NON_NEGATIVE,
    POSITIVE,
    backend_options,
    check_json_path,
    int_list,
    json_report_option,
    load_options,
    write_json_report,
)
from edgedet.errors import InputError


@click.command("bench")
@click.argument("artifact", type=click.Path(dir_okay=False))
@click.argument("source", required=False)
@click.option("--batch", "batches", default="1", show_default=True, help="Batch sizes, e.g. 1,8.")
@click.option("--iters", type=POSITIVE, default=50, show_default=True)
@click.option("--warmup", type=NON_NEGATIVE, default=10, show_default=True)
@click.option(
    "--images",
    "image_dir",
    type=click.Path(file_okay=False),
    help="Folder of real images (else random 640x480 frames).",
)
@backend_options
@click.option(
    "--cuda-graph",
    type=click.Choice(["on", "off", "both"]),
    help="TensorRT engines: replay CUDA graphs (on), not (off), or measure both.",
)
@json_report_option
@click.option("--max-frames", type=int, help="With SOURCE: stop after this many frames per stream.")
@click.option(
    "--duration", type=float, help="With SOURCE: stop after this many seconds (live sources)."
)
@click.pass_context
def bench_cmd(
    ctx,
    artifact,
    source,
    batches,
    iters,
    warmup,
    image_dir,
    backend,
    providers,
    spinning,
    cuda_graph,
    json_path,
    max_frames,
    duration,
):
    """Time ARTIFACT stage by stage (preprocess, inference, postprocess, end-to-end).

    With SOURCE (a video, URL, camera or source list): the stream pipeline end to end (pipeline
    FPS, per-stage times, capture-to-result latency, dropped frames), see docs/streams.md.
    """
    opts = load_options(artifact, backend, providers, spinning)
    check_json_path(json_path, [artifact, f"{artifact}.json"])  # fail before the run, not after it
    if source:
        from edgedet.streams.cli import bench_stream

        batch = (
            int_list(batches, "--batch")[0]
            if ctx.get_parameter_source("batches").name != "DEFAULT"
            else None
        )
        return bench_stream(artifact, source, opts, batch, max_frames, duration, json_path)
    import edgedet
    from edgedet.bench import (
        BenchConfig,
        bench_detector,
        format_table,
        machine_info,
        synthetic_images,
    )
    from edgedet.preprocess import list_images, read_image

    sizes = int_list(batches, "--batch")
    if iters < 1 or warmup < 0:
        raise InputError("--iters must be >= 1 and --warmup >= 0")
    images = [read_image(p) for p in list_images(image_dir)] if image_dir else synthetic_images(8)
    with edgedet.load(artifact, **opts) as det:
        fixed = det.backend.inputs[0].shape[0]
        if fixed and any(b != fixed for b in sizes):
            raise InputError(
                f"{artifact} has a fixed batch of {fixed}; use --batch {fixed} or export with"
                " --dynamic-batch"
            )
        limit = det.backend.capabilities.batch_range  # TensorRT: the optimisation profile's batches
        top = limit[1] if limit else None
        if top and any(b > top for b in sizes):
            raise InputError(
                f"{artifact} was built for batches up to {top}; use --batch <= {top} or rebuild"
                " with `edgedet build --batch min,opt,max`"
            )
        # before the banner: one line when refused
        if cuda_graph and not det.backend.capabilities.cuda_graph:
            raise InputError(
                "--cuda-graph applies to TensorRT engines; this artifact runs on"
                f" {det.backend.name}"
            )
        report = {
            "artifact": str(artifact),
            "model": f"{det.manifest.family}/{det.manifest.model}",
            "input": list(det.manifest.input.shape),
            "backend": det.backend.describe(),
            "machine": machine_info(),
            "images": image_dir or "random 640x480 RGB frames",
            "iters": iters,
            "warmup": warmup,
        }
        backend = ", ".join(
            f"{k} {v if not isinstance(v, list) else '/'.join(map(str, v))}"
            for k, v in report["backend"].items()
        )
        click.echo(
            f"benchmarking {artifact} on {report['machine']['cpu']} ({report['machine']['cores']}"
            f" cores); {backend}",
            err=True,
        )
        runs = _graph_runs(
            det,
            cuda_graph,
            lambda: bench_detector(det, images, BenchConfig(tuple(sizes), iters, warmup)),
        )
        report.update(runs[0][1])
        if cuda_graph:
            report["cuda_graph"] = {mode: res for mode, res in runs}
    for mode, res in runs:
        if mode:
            click.echo(f"cuda graph: {mode}")
        click.echo(format_table(res))
    click.echo("includes: " + "; ".join(f"{k} = {v}" for k, v in report["stages"].items()))
    if json_path:
        write_json_report(json_path, report)


def _graph_runs(det, cuda_graph: str | None, run) -> list[tuple[str | None, dict]]:
    """[(mode, results)]: one plain run, or one per CUDA graph setting (TensorRT backend only)."""
    if not cuda_graph:
        return [(None, run())]
    if not det.backend.capabilities.cuda_graph:
        raise InputError(
            f"--cuda-graph applies to TensorRT engines; this artifact runs on {det.backend.name}"
        )
    out = []
    for mode in ["off", "on"] if cuda_graph == "both" else [cuda_graph]:
        det.backend.cuda_graph = mode == "on"
        out.append((mode, run()))
    return out
