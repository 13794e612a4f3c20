"""`edgedet serve`: any edgedet detector behind the real Triton Inference Server
(``nvidia-pytriton``).

PyTriton runs NVIDIA's ``tritonserver`` binary (bundled in its wheel) and hands each batch that
Triton's dynamic batcher forms to a Python callable; here that callable decodes the requests' image
bytes and calls :meth:`edgedet.Detector.predict` on the whole batch, so HTTP/gRPC, queueing,
batching, several model instances and the Prometheus metrics endpoint are Triton's own.

One request = one encoded image (JPEG/PNG/... bytes, input ``image``, BYTES [1]); the response is
the detections in original-image pixels, padded to the model's K (``max_output_boxes``):
``num_dets`` int32 [1], ``det_boxes`` float32 [K, 4], ``det_scores`` float32 [K], ``det_classes``
int32 [K], ``image_size`` int32 [2] (height, width). :mod:`edgedet.client` turns it back into
:class:`~edgedet.detections.Detections`.

PyTriton pins ``numpy<2`` (``pip install 'edgedet[serve]'`` in its own environment) and its
Python backend stub must load this interpreter's ``libpython``: :func:`serve` puts the
interpreter's library folder on ``LD_LIBRARY_PATH`` for the server processes it starts.
"""

from __future__ import annotations

import io
import logging
import os
import socket
import sysconfig
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgedet.errors import InputError, ServeError, require

INPUT = "image"
OUTPUTS = ("num_dets", "det_boxes", "det_scores", "det_classes", "image_size")
LOGGER = logging.getLogger("edgedet.serve")


@dataclass
class ServeOptions:
    """Where and how Triton serves the model (ports 0 are not allowed: clients need to know
    them)."""

    name: str = "edgedet"
    address: str = "127.0.0.1"
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    instances: int = 1
    max_batch: int = 8
    dynamic_batching: bool = True
    queue_delay_us: int = 2000
    backend: str = "auto"
    providers: str | None = None
    log_verbose: int = 0
    decode_threads: int = 0  # threads decoding a batch's images; 0: one per CPU core
    threads: int | None = (
        None  # ONNX Runtime intra-op threads per instance; None: ONNX Runtime's default
    )
    spinning: str | None = None  # ONNX Runtime thread waiting (SPINNING); None: edgedet's default

    def validate(self) -> None:
        if self.instances < 1 or self.max_batch < 1:
            raise InputError(
                f"--instances and --max-batch must be >= 1 (got {self.instances}, {self.max_batch})"
            )
        if self.decode_threads < 0 or (self.threads is not None and self.threads < 1):
            raise InputError(
                f"--decode-threads must be >= 0 and --threads >= 1 (got {self.decode_threads}, "
                f"{self.threads})"
            )
        ports = (self.http_port, self.grpc_port, self.metrics_port)
        if len(set(ports)) != 3 or not all(0 < p < 65536 for p in ports):
            raise InputError(
                "--http-port, --grpc-port and --metrics-port must be three distinct ports; got"
                f" {ports}"
            )


def decode(data, index: int) -> np.ndarray:
    """One request's image bytes -> RGB uint8, decoded by edgedet's own reader (same pixels as a
    file)."""
    from edgedet.preprocess import read_image

    raw = bytes(data)
    if not raw:
        raise InputError(f"request #{index} in the batch carries no image bytes")
    buffer = io.BytesIO(raw)
    try:
        return read_image(buffer)
    except InputError as exc:
        reason = str(exc).replace(str(buffer), "the data")
        raise InputError(
            f"request #{index} in the batch: its {len(raw)} image bytes cannot be decoded "
            f"(corrupt, truncated or not an image): {reason}"
        ) from None


def pack(dets: list, k: int) -> dict[str, np.ndarray]:
    """Detections -> the batched, K-padded response arrays (rows past num_dets are zero)."""
    b = len(dets)
    out = {
        "num_dets": np.zeros((b, 1), np.int32),
        "det_boxes": np.zeros((b, k, 4), np.float32),
        "det_scores": np.zeros((b, k), np.float32),
        "det_classes": np.zeros((b, k), np.int32),
        "image_size": np.zeros((b, 2), np.int32),
    }
    for i, d in enumerate(dets):
        n = min(len(d), k)
        out["num_dets"][i, 0] = n
        out["det_boxes"][i, :n] = d.boxes[:n]
        out["det_scores"][i, :n] = d.scores[:n]
        out["det_classes"][i, :n] = d.class_ids[:n]
        out["image_size"][i] = d.image_size
    return out


def decoder_pool(threads: int = 0):
    """Threads that decode a batch's images side by side (0: one per CPU core; 1: none, decode in
    the caller).

    Pillow's JPEG/PNG decoders release the GIL while they run, so the images of one batch decode in
    parallel; a single request has nothing to split, which is part of what a batch buys on a CPU."""
    from concurrent.futures import ThreadPoolExecutor

    n = threads or os.cpu_count() or 1
    return ThreadPoolExecutor(n, thread_name_prefix="edgedet-decode") if n > 1 else None


def decode_batch(image: np.ndarray, pool=None) -> list[np.ndarray]:
    """A batch's image bytes [B, 1] -> RGB arrays in request order, on ``pool``'s threads when
    given; a bad request raises the InputError of the first one in order, as the serial loop
    would."""
    b = image.shape[0]
    if pool is None or b == 1:
        return [decode(image[i, 0], i) for i in range(b)]
    return list(pool.map(decode, (image[i, 0] for i in range(b)), range(b)))


def make_infer_func(detector, k: int, pool=None):
    """The callable Triton calls with each batch: image bytes [B, 1] -> packed detections."""
    from pytriton.decorators import batch

    @batch
    def infer(image: np.ndarray) -> dict[str, np.ndarray]:
        return pack(detector.predict(decode_batch(image, pool)), k)

    return infer


def free_ports(n: int) -> list[int]:
    """``n`` TCP ports on the loopback that nothing listens on now (for
    --http-port/--grpc-port/...)."""
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def serve_in_subprocess(
    model: str | os.PathLike, args=(), log=None, timeout_s: float = 180.0, name: str = "edgedet"
):
    """Run ``edgedet serve MODEL --name NAME ARGS`` on free loopback ports in a child process and
    wait until Triton reports the model ready (for tests and benchmarks; needs ``tritonclient``).

    ``log``: an open file for the child's output (default: discarded). Returns ``(proc, urls)``,
    urls ``{"grpc", "http", "metrics"}``; raises :class:`ServeError` (the child killed) when it
    exits or is not ready within ``timeout_s``.
    """
    import subprocess
    import sys
    import time

    import tritonclient.grpc as grpcclient

    http, grpc, metrics = free_ports(3)
    ports = ["--http-port", str(http), "--grpc-port", str(grpc), "--metrics-port", str(metrics)]
    cmd = [sys.executable, "-m", "edgedet.cli", "serve", str(model), "--name", name, *ports, *args]
    out = log if log is not None else subprocess.DEVNULL
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc}")
    deadline = time.monotonic() + timeout_s
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            if client.is_model_ready(name):
                urls = {
                    "grpc": f"127.0.0.1:{grpc}",
                    "http": f"127.0.0.1:{http}",
                    "metrics": f"http://127.0.0.1:{metrics}/metrics",
                }
                return proc, urls
        except Exception:  # not listening yet
            pass
        time.sleep(0.5)
    code = proc.poll()
    proc.kill()
    proc.wait()
    why = f"not ready in {timeout_s:g} s" if code is None else f"exited with code {code}"
    raise ServeError(f"edgedet serve {Path(model).name} {' '.join(args)}: {why}")


def library_path_env() -> None:
    """Put this interpreter's libpython folder first on LD_LIBRARY_PATH for the server's processes:
    Triton's Python backend stub otherwise loads another libpython and fails to start the model."""
    libdir = sysconfig.get_config_var("LIBDIR")
    current = os.environ.get("LD_LIBRARY_PATH", "")
    if libdir and libdir not in current.split(os.pathsep):
        os.environ["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (libdir, current) if p)


def open_detectors(model: str | os.PathLike, opts: ServeOptions) -> list:
    """One Detector per Triton model instance (each instance runs its batches on its own
    session)."""
    import edgedet

    extra = {"providers": opts.providers} if opts.providers else {}
    if opts.threads:
        extra["threads"] = opts.threads
    if opts.spinning:
        extra["spinning"] = opts.spinning
    detectors = [edgedet.load(model, backend=opts.backend, **extra) for _ in range(opts.instances)]
    if detectors[0].manifest.task != "detect":
        raise InputError(
            f"{Path(model).name} is a {detectors[0].manifest.task} model; edgedet serve serves"
            " detectors"
        )
    return detectors


def bind(triton, detectors: list, opts: ServeOptions) -> None:
    """Bind ``detectors`` (one per model instance, :func:`open_detectors`) to a
    ``pytriton.triton.Triton``."""
    from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor

    k = detectors[0].nms_params.max_output_boxes
    batcher = (
        DynamicBatcher(max_queue_delay_microseconds=opts.queue_delay_us)
        if opts.dynamic_batching
        else None
    )
    pool = decoder_pool(opts.decode_threads)
    triton.bind(
        model_name=opts.name,
        infer_func=[make_infer_func(d, k, pool) for d in detectors],
        inputs=[Tensor(name=INPUT, dtype=bytes, shape=(1,))],
        outputs=[
            Tensor(name="num_dets", dtype=np.int32, shape=(1,)),
            Tensor(name="det_boxes", dtype=np.float32, shape=(k, 4)),
            Tensor(name="det_scores", dtype=np.float32, shape=(k,)),
            Tensor(name="det_classes", dtype=np.int32, shape=(k,)),
            Tensor(name="image_size", dtype=np.int32, shape=(2,)),
        ],
        config=ModelConfig(max_batch_size=opts.max_batch, batcher=batcher),
        strict=True,
    )


# How often `serve` starts Triton before giving up on PyTriton's instance start-up race.
START_ATTEMPTS = 3


def instance_start_race(exc: BaseException) -> bool:
    """Whether Triton refused the model because of PyTriton's start-up race between instances.

    With several instances, PyTriton 0.7's Python-backend stub of instance 0 serves the shared
    configuration on a Unix socket; the stubs of the other instances, which Triton starts at the
    same time, connect as soon as the socket file exists (``get_config_from_handshake_server`` in
    ``pytriton/proxy/communication.py``). The file exists from ``bind()``, before ``listen()``,
    and they wait at most 1 s for it, so on a busy machine an instance can get "Connection
    refused" (or a timeout) and Triton marks the whole model UNAVAILABLE. Nothing is wrong with
    the model: a fresh start usually succeeds.
    """
    return "get_config_from_handshake_server" in str(exc)


def _sigterm_stops_like_ctrl_c() -> None:
    """SIGTERM (docker stop, systemd) takes the Ctrl-C path, so tritonserver is stopped, not
    orphaned."""
    import signal
    import threading

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)


def triton_config(opts: ServeOptions):
    from pytriton.triton import TritonConfig

    return TritonConfig(
        http_address=opts.address,
        http_port=opts.http_port,
        grpc_address=opts.address,
        grpc_port=opts.grpc_port,
        metrics_address=opts.address,
        metrics_port=opts.metrics_port,
        log_verbose=opts.log_verbose,
        exit_timeout_secs=5,
    )


def start_triton(opts: ServeOptions):
    """A ``pytriton.triton.Triton`` for ``opts``, not started yet (a context manager); ``serve``
    has checked that pytriton is installed."""
    library_path_env()
    logging.getLogger("pytriton").setLevel(logging.WARNING)
    from pytriton.triton import Triton

    return Triton(config=triton_config(opts))


def serve(model: str | os.PathLike, opts: ServeOptions, on_ready=None, triton=start_triton) -> None:
    """Serve ``model`` until SIGINT/SIGTERM (Ctrl-C); Triton drains in-flight requests, then
    stops. ``triton(opts)`` makes the server (tests pass a stand-in); a start that loses PyTriton's
    instance start-up race (:func:`instance_start_race`) is retried with a fresh server."""
    opts.validate()
    if not Path(model).is_file():
        raise InputError(f"model file {model} does not exist")
    if triton is start_triton:
        require("pytriton", "serve", "edgedet serve")  # before the sessions load
    # PyTriton leaves its workspace to TemporaryDirectory's finaliser, which removes it and warns
    warnings.filterwarnings(
        "ignore", r"Implicitly cleaning up <TemporaryDirectory '.*pytriton", ResourceWarning
    )
    _sigterm_stops_like_ctrl_c()
    detectors = open_detectors(model, opts)
    try:
        for attempt in range(1, START_ATTEMPTS + 1):
            with triton(opts) as server:
                try:
                    bind(server, detectors, opts)
                except Exception as exc:
                    if not instance_start_race(exc):
                        raise
                    if attempt == START_ATTEMPTS:
                        raise ServeError(
                            f"Triton could not start the {opts.instances} instances of"
                            f" {Path(model).name} in {START_ATTEMPTS} attempts (PyTriton's"
                            " instance start-up race on a busy machine); run it again, or with"
                            " fewer --instances"
                        ) from exc
                    LOGGER.warning(
                        "edgedet serve: an instance of %s lost PyTriton's start-up race "
                        "(attempt %d of %d); restarting Triton",
                        Path(model).name,
                        attempt,
                        START_ATTEMPTS,
                    )
                    continue
                server.run()
                if on_ready:
                    on_ready()
                server.serve()  # blocks; returns when a signal stops the server
                return
    finally:
        for d in detectors:
            d.close()
