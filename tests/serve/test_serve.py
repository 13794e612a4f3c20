"""`edgedet serve` end to end: the real Triton server (nvidia-pytriton) serving nano on loopback
ports.

Runs in its own environment (PyTriton pins numpy<2): `make test` builds .venv-serve, exports nano
with the main environment and points EDGEDET_SERVE_MODEL at it.
"""

import os
import signal
import socket
import subprocess
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest

pytest.importorskip(
    "pytriton", reason="runs in .venv-serve, which `make test` creates (PyTriton pins numpy<2)"
)
import tritonclient.grpc as grpcclient  # noqa: E402
from tritonclient.utils import InferenceServerException  # noqa: E402

import edgedet  # noqa: E402
from edgedet.client import DetectorClient  # noqa: E402
from edgedet.errors import ServeError  # noqa: E402
from edgedet.preprocess import read_image  # noqa: E402
from edgedet.serve import serve_in_subprocess  # noqa: E402

CLIENTS, PER_CLIENT = 8, 6


@pytest.fixture(scope="module")
def model_path():
    path = os.environ.get("EDGEDET_SERVE_MODEL")
    if not path or not os.path.isfile(path):
        pytest.fail(
            "EDGEDET_SERVE_MODEL must name an edgedet nano ONNX file with a dynamic batch "
            "(`make test` exports one); got " + repr(path)
        )
    return path


@pytest.fixture(scope="module")
def server(model_path, tmp_path_factory):
    """`edgedet serve` in a subprocess; stopped with SIGINT (Ctrl-C) at the end, which must exit
    cleanly."""
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    args = ["--max-batch", "8", "--instances", "2"]
    with open(log, "w") as fh:
        try:
            proc, urls = serve_in_subprocess(model_path, args, log=fh)
        except ServeError as exc:
            pytest.fail(f"{exc}:\n{log.read_text()[-3000:]}")
    yield {**urls, "proc": proc, "log": log}
    proc.send_signal(signal.SIGINT)
    try:
        code = proc.wait(timeout=90)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("edgedet serve did not stop within 90 s of Ctrl-C (SIGINT)")
    text = log.read_text()
    assert code == 0 and "edgedet serve: stopped" in text, text[-2000:]
    assert f"gRPC {urls['grpc']}" in text  # the ready line names the port
    # tritonserver went with it: nothing listens on the gRPC port any more
    host, port = urls["grpc"].rsplit(":", 1)
    with pytest.raises(OSError):
        socket.create_connection((host, int(port)), timeout=2).close()


@pytest.fixture(scope="module")
def images():
    """Encoded JPEG/PNG files of nano's synthetic shapes, sizes and aspect ratios varying."""
    from exporters.nano.synthetic import render_image

    out = []
    for i in range(CLIENTS * PER_CLIENT // 4):
        rgb, _ = render_image(seed=17, index=i)
        ext = ".png" if i % 2 else ".jpg"
        ok, buf = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        assert ok
        out.append(buf.tobytes())
    return out


@pytest.fixture(scope="module")
def local(model_path):
    with edgedet.load(model_path) as det:
        yield det


def same(a, b):
    return (
        np.array_equal(a.boxes, b.boxes)
        and np.array_equal(a.scores, b.scores)
        and np.array_equal(a.class_ids, b.class_ids)
        and a.image_size == b.image_size
    )


def metric(url, name):
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + "{"))


def test_concurrent_grpc_clients_get_the_local_detector_result_bit_for_bit(server, images, local):
    import io

    reference = [local.predict([read_image(io.BytesIO(b))])[0] for b in images]
    # nano finds the shapes: something to compare
    assert sum(len(r) for r in reference) >= len(images)
    before = (
        metric(server["metrics"], "nv_inference_count"),
        metric(server["metrics"], "nv_inference_exec_count"),
    )

    def client(c):
        with DetectorClient(server["grpc"], class_names=local.manifest.class_names) as cl:
            picks = [(c * PER_CLIENT + j) % len(images) for j in range(PER_CLIENT)]
            return [(k, cl.detect(images[k])[0]) for k in picks]

    with ThreadPoolExecutor(CLIENTS) as pool:
        results = [r for rs in pool.map(client, range(CLIENTS)) for r in rs]
    assert len(results) == CLIENTS * PER_CLIENT
    mismatched = [k for k, d in results if not same(d, reference[k])]
    assert not mismatched, f"responses for images {mismatched} differ from the local Detector"
    deadline = time.monotonic() + 15  # Triton's metrics lag the responses slightly
    while (requests := metric(server["metrics"], "nv_inference_count") - before[0]) < len(
        results
    ) and time.monotonic() < deadline:
        time.sleep(0.5)
    executions = metric(server["metrics"], "nv_inference_exec_count") - before[1]
    assert requests == CLIENTS * PER_CLIENT
    assert executions < requests, "Triton's dynamic batcher formed no batch larger than one request"


def test_http_client_gets_the_same_result(server, images, local):
    import io

    with DetectorClient(server["http"], protocol="http") as cl:
        got = cl.detect(images[0])[0]
    assert same(got, local.predict([read_image(io.BytesIO(images[0]))])[0]) and len(got) > 0


@pytest.mark.parametrize("case", ["wrong shape", "wrong dtype", "corrupt bytes", "empty bytes"])
def test_bad_requests_get_a_triton_error_and_the_server_keeps_serving(server, images, local, case):
    client = grpcclient.InferenceServerClient(server["grpc"])
    arrays = {
        "wrong shape": (np.array([[images[0], images[1]]], dtype=np.object_), "BYTES"),
        "wrong dtype": (np.zeros((1, 1), np.float32), "FP32"),
        "corrupt bytes": (
            np.array([[images[0][: len(images[0]) // 3]]], dtype=np.object_),
            "BYTES",
        ),
        "empty bytes": (np.array([[b""]], dtype=np.object_), "BYTES"),
    }
    arr, dtype = arrays[case]
    inp = grpcclient.InferInput("image", list(arr.shape), dtype)
    inp.set_data_from_numpy(arr)
    with pytest.raises(InferenceServerException) as err:
        client.infer("edgedet", [inp])
    want = {
        "wrong shape": "unexpected shape",
        "wrong dtype": "data-type",
        "corrupt bytes": "cannot be decoded",
        "empty bytes": "no image bytes",
    }[case]
    assert want in str(err.value)
    assert server["proc"].poll() is None
    with DetectorClient(server["grpc"]) as cl:  # still serving
        import io

        assert same(cl.detect(images[1])[0], local.predict([read_image(io.BytesIO(images[1]))])[0])


def test_metrics_endpoint_reports_the_model(server):
    assert metric(server["metrics"], "nv_inference_request_success") > 0


def test_a_server_that_exits_at_start_is_reported_with_its_exit_code(tmp_path):
    log = tmp_path / "serve.log"
    with open(log, "w") as fh, pytest.raises(ServeError, match="exited with code 2"):
        serve_in_subprocess(tmp_path / "missing.onnx", log=fh, timeout_s=60)
    assert "does not exist" in log.read_text()
