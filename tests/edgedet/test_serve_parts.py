"""The parts of `edgedet serve` that need no server: request decoding, response packing, option and
dependency errors (the server itself is tested in tests/serve/, in its own environment)."""

import importlib.util
import io

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from edgedet import serve as serve_module
from edgedet.cli.main import cli
from edgedet.client import unpack
from edgedet.detections import Detections
from edgedet.errors import InputError, ServeError
from edgedet.preprocess import read_image
from edgedet.serve import ServeOptions, decode, decode_batch, decoder_pool, pack


def png_bytes(rgb):
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def test_decode_gives_the_pixels_read_image_gives_for_the_file(rgb_image, tmp_path):
    data = png_bytes(rgb_image)
    (tmp_path / "a.png").write_bytes(data)
    np.testing.assert_array_equal(decode(np.bytes_(data), 0), read_image(tmp_path / "a.png"))


@pytest.mark.parametrize(
    "data,match", [(b"", "no image bytes"), (b"\x89PNG\r\n\x1a\n broken", "cannot be decoded")]
)
def test_decode_errors_name_the_request(data, match):
    with pytest.raises(InputError, match=match) as err:
        decode(data, 3)
    assert "request #3" in str(err.value) and "BytesIO" not in str(err.value)


def test_pack_pads_to_k_and_unpack_restores_detections():
    a = Detections(
        np.array([[1, 2, 30, 40], [5, 5, 9, 9]], np.float32),
        np.array([0.9, 0.4], np.float32),
        np.array([2, 0], np.int32),
        ("x", "y", "z"),
        (48, 80),
    )
    b = Detections(
        np.zeros((0, 4), np.float32),
        np.zeros(0, np.float32),
        np.zeros(0, np.int32),
        ("x", "y", "z"),
        (10, 20),
    )
    out = pack([a, b], k=4)
    assert out["det_boxes"].shape == (2, 4, 4) and out["num_dets"][:, 0].tolist() == [2, 0]
    assert not out["det_boxes"][0, 2:].any() and out["image_size"].tolist() == [[48, 80], [10, 20]]
    back = unpack({name: arr[:1] for name, arr in out.items()}, ("x", "y", "z"))
    assert np.array_equal(back.boxes, a.boxes) and np.array_equal(back.scores, a.scores)
    assert np.array_equal(back.class_ids, a.class_ids) and back.image_size == (48, 80)


def test_decode_batch_on_threads_keeps_request_order_and_names_the_bad_request(rgb_image):
    """A batch's images decoded on the pool equal the serial decode, in request order; the first bad
    request in order is the one the error names, whichever thread finished first."""
    imgs = [rgb_image, rgb_image[::-1].copy(), rgb_image[:, ::-1].copy(), rgb_image[:20]]
    batch = np.array([[png_bytes(x)] for x in imgs], dtype=np.object_)
    pool = decoder_pool(3)
    try:
        got = decode_batch(batch, pool)
        assert len(got) == 4 and all(np.array_equal(a, b) for a, b in zip(got, decode_batch(batch)))
        assert all(np.array_equal(a, b) for a, b in zip(got, imgs))
        bad = batch.copy()
        bad[2, 0], bad[3, 0] = b"\x89PNG\r\n\x1a\n broken", b""
        with pytest.raises(InputError, match="request #2"):
            decode_batch(bad, pool)
    finally:
        pool.shutdown()
    assert decoder_pool(1) is None  # 1: decode in the caller, no pool


@pytest.mark.parametrize(
    "kw",
    [
        {"instances": 0},
        {"http_port": 8001},
        {"metrics_port": 70000},
        {"decode_threads": -1},
        {"threads": 0},
    ],
)
def test_bad_options(kw):
    with pytest.raises(InputError):
        ServeOptions(**kw).validate()


def test_cli_errors_are_one_line(tiny_nms, tmp_path):
    res = CliRunner().invoke(cli, ["serve", str(tmp_path / "missing.onnx")])
    assert res.exit_code == 2 and "does not exist" in res.output and "Traceback" not in res.output
    if importlib.util.find_spec("pytriton") is None:  # the main environment: say how to get it
        res = CliRunner().invoke(cli, ["serve", str(tiny_nms)])
        assert res.exit_code == 3 and "pip install 'edgedet[serve]'" in res.output


# What Triton answered in a CI run where instance 1 of 2 connected to instance 0's handshake socket
# before it listened (abridged: the load error carries the stub's traceback).
RACE = (
    "[400] load failed for model 'edgedet': version 1 is at UNAVAILABLE state: Internal: "
    "TritonModelException: Model initialize error: Traceback (most recent call last):\n"
    '  File "/tmp/folderVXNltD/1/model.py", line 425, in initialize\n'
    "    inference_handler_config = get_config_from_handshake_server(handshake_socket)\n"
    '  File "/tmp/folderVXNltD/1/communication.py", line 550, in get_config_from_handshake_server\n'
    "    sock.connect(socket_path.as_posix())\n"
    "ConnectionRefusedError: [Errno 111] Connection refused\n"
)


class StandInTriton:
    """Stands in for pytriton's Triton: a context manager with run() and serve(); `serve.bind` is
    replaced so that binding fails with `error` while that many starts remain."""

    def __init__(self, failures: int, error: str):
        self.failures, self.error = failures, error
        self.servers, self.bound = [], []

    def __call__(self, opts):
        server = {"entered": False, "exited": False, "ran": False, "served": False}
        self.servers.append(server)
        stand_in = self

        class Server:
            def __enter__(self):
                server["entered"] = True
                return self

            def __exit__(self, *exc):
                server["exited"] = True

            def run(self):
                server["ran"] = True

            def serve(self):
                server["served"] = True

            def bind(self, detectors):
                stand_in.bound.append(detectors)
                if stand_in.failures:
                    stand_in.failures -= 1
                    raise RuntimeError(stand_in.error)

        return Server()


@pytest.fixture
def stand_in(monkeypatch):
    def make(failures, error=RACE):
        fake = StandInTriton(failures, error)
        monkeypatch.setattr(serve_module, "bind", lambda server, dets, opts: server.bind(dets))
        monkeypatch.setattr(serve_module, "_sigterm_stops_like_ctrl_c", lambda: None)
        return fake

    return make


def opts2():
    return ServeOptions(instances=2, http_port=18000, grpc_port=18001, metrics_port=18002)


def test_serve_restarts_triton_when_an_instance_loses_the_start_up_race(tiny_nms, stand_in):
    fake = stand_in(failures=2)
    ready = []
    serve_module.serve(tiny_nms, opts2(), on_ready=lambda: ready.append(1), triton=fake)
    assert len(fake.servers) == 3 and ready == [1]
    # the failed servers were stopped without running; the third ran and served
    assert [s["exited"] for s in fake.servers] == [True, True, True]
    assert [s["ran"] for s in fake.servers] == [False, False, True]
    assert fake.servers[2]["served"]
    # the same two sessions were bound each time, and closed at the end
    assert all(dets is fake.bound[0] for dets in fake.bound) and len(fake.bound[0]) == 2
    assert all(d.backend._closed for d in fake.bound[0])


def test_serve_gives_up_after_the_last_attempt_with_one_line(tiny_nms, stand_in):
    fake = stand_in(failures=serve_module.START_ATTEMPTS)
    with pytest.raises(ServeError, match="in 3 attempts.*fewer --instances"):
        serve_module.serve(tiny_nms, opts2(), triton=fake)
    assert len(fake.servers) == serve_module.START_ATTEMPTS
    assert not any(s["ran"] for s in fake.servers)
    assert all(d.backend._closed for d in fake.bound[0])


def test_other_start_errors_are_not_retried(tiny_nms, stand_in):
    fake = stand_in(failures=1, error="[400] load failed for model 'edgedet': out of memory")
    with pytest.raises(RuntimeError, match="out of memory"):
        serve_module.serve(tiny_nms, opts2(), triton=fake)
    assert len(fake.servers) == 1 and fake.servers[0]["exited"]
    assert all(d.backend._closed for d in fake.bound[0])


def test_the_race_is_recognised_by_the_stub_function_in_the_error():
    assert serve_module.instance_start_race(RuntimeError(RACE))
    timeout = RACE.replace(
        "sock.connect(socket_path.as_posix())\n"
        "ConnectionRefusedError: [Errno 111] Connection refused",
        "raise TimeoutError(...)\nTimeoutError: Timeout occurred while waiting for config file",
    )
    assert serve_module.instance_start_race(RuntimeError(timeout))
    assert not serve_module.instance_start_race(RuntimeError("Connection refused"))
