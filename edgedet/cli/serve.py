"""`edgedet serve`: serve a detector through Triton (nvidia-pytriton); see edgedet/serve.py."""

from __future__ import annotations

import click

from edgedet.cli.common import backend_options, load_options


@click.command("serve")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--name", default="edgedet", show_default=True, help="Model name clients ask for.")
@click.option(
    "--address", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: all)."
)
@click.option("--http-port", type=int, default=8000, show_default=True)
@click.option("--grpc-port", type=int, default=8001, show_default=True)
@click.option(
    "--metrics-port",
    type=int,
    default=8002,
    show_default=True,
    help="Prometheus metrics (/metrics).",
)
@click.option(
    "--instances",
    type=int,
    default=1,
    show_default=True,
    help="Model instances (one session each).",
)
@click.option(
    "--max-batch", type=int, default=8, show_default=True, help="Largest batch Triton forms."
)
@click.option(
    "--no-dynamic-batching", is_flag=True, help="One request per model call (for comparison)."
)
@click.option(
    "--queue-delay-us",
    type=int,
    default=2000,
    show_default=True,
    help="How long Triton may hold a request to fill a batch.",
)
@backend_options
@click.option("--log-verbose", type=int, default=0, help="Triton's verbose log level.")
@click.option(
    "--decode-threads",
    type=int,
    default=0,
    show_default=True,
    help="Threads decoding a batch's images (0: one per CPU core, 1: no thread pool).",
)
@click.option(
    "--threads",
    type=int,
    help="ONNX Runtime intra-op threads per instance (default: ONNX Runtime's).",
)
def serve_cmd(
    model,
    name,
    address,
    http_port,
    grpc_port,
    metrics_port,
    instances,
    max_batch,
    no_dynamic_batching,
    queue_delay_us,
    backend,
    providers,
    spinning,
    log_verbose,
    decode_threads,
    threads,
):
    """Serve MODEL over HTTP and gRPC with Triton's dynamic batching, until Ctrl-C."""
    from edgedet.serve import ServeOptions, serve

    # --providers / --ort-spinning for an engine: refused now, once
    load_options(model, backend, providers, spinning)
    opts = ServeOptions(
        name,
        address,
        http_port,
        grpc_port,
        metrics_port,
        instances,
        max_batch,
        not no_dynamic_batching,
        queue_delay_us,
        backend,
        ",".join(providers) if providers else None,
        log_verbose,
        decode_threads,
        threads,
        spinning,
    )

    def ready():
        click.echo(
            f"serving {model} as '{name}': gRPC {address}:{grpc_port}, HTTP {address}:{http_port}, "
            f"metrics http://{address}:{metrics_port}/metrics; Ctrl-C stops",
            err=True,
        )

    serve(model, opts, on_ready=ready)
    click.echo("edgedet serve: stopped", err=True)
