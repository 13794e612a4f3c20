"""The TensorRT backend's own logic (load order, buffers, chunking, graphs, timings) on CPU.

TensorRT and cuda-python are replaced by the stand-ins in trt_fakes.py, which model the
documented API behaviour cited there. No engine is built or run by TensorRT in these tests.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import trt_fakes
from trt_fakes import tensorrt_section, write_engine

from edgedet.errors import CompatibilityError, InputError, ManifestError, ModelError
from edgedet.trt.cuda import CudaError


def _open(path, **kw):
    from edgedet.backends.tensorrt import TensorRTBackend

    return TensorRTBackend(path, **kw)


def _images(n, size=8):
    return np.stack([np.full((3, size, size), 0.1 * (i + 1), np.float32) for i in range(n)])


def test_io_specs_profile_and_describe(fake_trt, fake_engine):
    with _open(fake_engine) as be:
        assert [s.name for s in be.inputs] == ["images"] and be.inputs[0].shape == (None, 3, 8, 8)
        assert [s.name for s in be.outputs] == [
            "num_dets",
            "det_boxes",
            "det_scores",
            "det_classes",
        ]
        assert be.outputs[3].dtype == np.int32 and (be.min_batch, be.max_batch) == (1, 4)
        d = be.describe()
        assert (
            d["tensorrt"] == "10.3.0.30"
            and d["compute_capability"] == "8.7"
            and d["batch_range"] == [1, 4]
        )
        caps = be.capabilities
        assert caps.batch_range == (1, 4) and caps.stage_timings and caps.cuda_graph


def test_other_backends_declare_no_extras(tiny_nms):
    """Callers read `capabilities` instead of probing: ONNX Runtime has no profile, timings or
    CUDA graphs; its calls may overlap (InferenceSession.run is thread-safe)."""
    from edgedet.backends.base import Backend, Capabilities
    from edgedet.loading import load

    assert Backend.capabilities == Capabilities(None, False, False)
    with load(tiny_nms) as det:
        caps = det.backend.capabilities
        assert (caps.batch_range, caps.stage_timings, caps.cuda_graph) == (None, False, False)
        assert caps.concurrent_calls and caps.intra_op_threads is None  # ONNX Runtime's default
        assert det.backend.last_timings == {}


@pytest.mark.parametrize("n", [1, 3, 4, 6, 9])
def test_outputs_follow_each_image_across_chunks(fake_trt, fake_engine, n):
    """Batches above the profile max run in chunks of 4; results stay in image order."""
    with _open(fake_engine) as be:
        out = be.infer({"images": _images(n)})
        assert out["det_scores"].shape == (n, 4) and out["num_dets"].shape == (n, 1)
        np.testing.assert_allclose(out["det_scores"][:, 0], 0.1 * np.arange(1, n + 1), rtol=1e-6)
        assert be.last_timings["chunks"] == -(-n // 4)


def test_batch_below_profile_min_is_padded(fake_trt, tmp_path):
    eng = write_engine(tmp_path / "m2.engine", trt_fakes.plan_bytes((2, 2, 4)), tensorrt_section())
    with _open(eng) as be:
        out = be.infer({"images": _images(1)})
        assert out["det_scores"].shape == (1, 4)
        np.testing.assert_allclose(out["det_scores"][0], 0.1, rtol=1e-6)


def test_fixed_batch_engine(fake_trt, tmp_path):
    eng = write_engine(
        tmp_path / "f.engine", trt_fakes.plan_bytes(fixed=2), tensorrt_section(), batch=2
    )
    with _open(eng) as be:
        assert be.inputs[0].shape == (2, 3, 8, 8) and (be.min_batch, be.max_batch) == (2, 2)
        np.testing.assert_allclose(
            be.infer({"images": _images(2)})["det_scores"][:, 0], [0.1, 0.2], rtol=1e-6
        )


def test_buffers_allocated_once_and_freed(fake_trt, fake_gpu, fake_engine):
    be = _open(fake_engine)
    allocated = len(fake_gpu.buffers)
    assert allocated == 10  # 5 tensors x (device + pinned)
    for n in (1, 4, 2):
        be.infer({"images": _images(n)})
    assert len(fake_gpu.buffers) == allocated and fake_gpu.calls.count("cudaMalloc") == allocated
    be.close()
    assert not fake_gpu.buffers and not fake_gpu.streams


def test_gpu_timings_are_split(fake_trt, fake_engine):
    with _open(fake_engine) as be:
        be.infer({"images": _images(2)})
        t = be.last_timings
        assert set(t) >= {"h2d_ms", "gpu_compute_ms", "d2h_ms", "gpu_total_ms", "host_ms"}
        assert t["gpu_compute_ms"] == pytest.approx(0.5)  # the fake kernel's cost on the fake clock
        assert t["gpu_total_ms"] == pytest.approx(t["h2d_ms"] + t["gpu_compute_ms"] + t["d2h_ms"])


def test_cuda_graph_matches_plain_execution(fake_trt, fake_gpu, fake_engine):
    with _open(fake_engine) as plain:
        want = {n: plain.infer({"images": _images(n)}) for n in (1, 3)}
    with _open(fake_engine, cuda_graph=True) as be:
        for _ in range(2):
            for n in (1, 3):
                got = be.infer({"images": _images(n)})
                for k in want[n]:
                    np.testing.assert_array_equal(got[k], want[n][k])
        assert sorted(be._graphs) == [1, 3] and be.describe()["cuda_graph"]
        assert fake_gpu.calls.count("cudaGraphLaunch") == 4
        be.cuda_graph = False
        assert not be._graphs


def test_capture_refused_falls_back_with_warning(fake_trt, fake_engine, monkeypatch):
    from trt_fakes import FakeContext

    monkeypatch.setattr(FakeContext, "refuse_capture", True)
    with _open(fake_engine, cuda_graph=True) as be:
        with pytest.warns(UserWarning, match="cannot be captured in a CUDA graph"):
            out = be.infer({"images": _images(2)})
        np.testing.assert_allclose(out["det_scores"][:, 0], [0.1, 0.2], rtol=1e-6)
        assert not be.describe()["cuda_graph"]


def test_detector_end_to_end(fake_trt, fake_engine, rgb_image):
    import edgedet

    with edgedet.load(fake_engine) as det:
        assert det.backend.name == "tensorrt"
        dets = det.predict([rgb_image] * 5)  # the Detector sends 5; the backend chunks 4 + 1
        assert len(dets) == 5 and all(len(d) == 1 for d in dets)


def test_compatibility_checked_before_deserialising(fake_trt, tmp_path):
    eng = write_engine(
        tmp_path / "old.engine",
        trt_fakes.plan_bytes(),
        tensorrt_section(version="10.7.0.23", cc="9.0"),
    )
    with pytest.raises(CompatibilityError) as e:
        _open(eng)
    msg = str(e.value)
    assert "TensorRT 10.7.0.23" in msg and "10.3.0.30" in msg and "compute capability 9.0" in msg
    assert fake_trt.runtimes == 0  # refused from the manifest alone


def test_no_gpu_is_refused_before_runtime(fake_trt, fake_engine, monkeypatch):
    import edgedet.backends.tensorrt as backend_mod
    from edgedet.trt.cuda import Cuda

    monkeypatch.setattr(backend_mod, "Cuda", lambda: Cuda(trt_fakes.FakeCudart(None)))
    with pytest.raises(CompatibilityError, match="no usable NVIDIA GPU.*cudaErrorNoDevice"):
        _open(fake_engine)
    assert fake_trt.runtimes == 0


def test_deserialise_failure_quotes_tensorrt(fake_trt, tmp_path):
    eng = write_engine(tmp_path / "junk.engine", b"\x00junk" * 50, tensorrt_section())
    with pytest.raises(ModelError, match="could not deserialise .*magicTag"):
        _open(eng)


def test_changed_engine_is_refused_by_manifest_hash(fake_trt, fake_engine):
    fake_engine.write_bytes(fake_engine.read_bytes()[:-3])
    with pytest.raises(ManifestError, match="changed or truncated"):
        _open(fake_engine)


def test_engine_without_manifest_warns_and_reads_io(fake_trt, tmp_path, rgb_image):
    import edgedet

    eng = write_engine(tmp_path / "bare.engine", trt_fakes.plan_bytes(), None)
    with pytest.warns(UserWarning, match="has no manifest"):
        det = edgedet.load(eng)
    with det:
        assert det.manifest.notes.get("inferred") and len(det(rgb_image)) == 1


def test_plugin_found_hash_checked_and_loaded(fake_trt, tmp_path):
    from edgedet.fileio import sha256_file

    lib = trt_fakes.fake_plugin_library(tmp_path / "libedgedet_nms_plugin.so")
    rec = {
        "file": lib.name,
        "sha256": sha256_file(lib),
        "creators": [{"name": "EdgeDetNMS", "version": "1", "namespace": "edgedet"}],
    }
    eng = write_engine(
        tmp_path / "p.engine", trt_fakes.plan_bytes(), tensorrt_section(plugins=[rec])
    )
    with _open(eng):
        assert fake_trt.registry.get_creator("EdgeDetNMS", "1", "edgedet") is not None
    lib.write_bytes(lib.read_bytes() + b" ")  # another build of the library
    with pytest.raises(CompatibilityError, match="different build of libedgedet_nms_plugin.so"):
        _open(eng)
    with warnings.catch_warnings():
        _open(eng, check_plugin_hash=False).close()


def test_missing_plugin_named_before_deserialising(fake_trt, tmp_path):
    rec = {
        "file": "libedgedet_nms_plugin.so",
        "sha256": "ab" * 32,
        "creators": [{"name": "EdgeDetNMS"}],
    }
    eng = write_engine(
        tmp_path / "p.engine", trt_fakes.plan_bytes(), tensorrt_section(plugins=[rec])
    )
    with pytest.raises(
        CompatibilityError, match="libedgedet_nms_plugin.so .*was not found.*edgedet plugin build"
    ):
        _open(eng)
    assert fake_trt.runtimes == 0


def test_plugin_without_expected_creator(fake_trt, tmp_path):
    lib = trt_fakes.fake_plugin_library(
        tmp_path / "libedgedet_nms_plugin.so", creators=[("Other", "1", "")]
    )
    rec = {
        "file": lib.name,
        "creators": [{"name": "EdgeDetNMS", "version": "1", "namespace": "edgedet"}],
    }
    eng = write_engine(
        tmp_path / "p.engine", trt_fakes.plan_bytes(), tensorrt_section(plugins=[rec])
    )
    with pytest.raises(CompatibilityError, match="did not register EdgeDetNMS v1"):
        _open(eng)


def test_cuda_failure_is_a_one_line_error(fake_trt, fake_engine, monkeypatch):
    import edgedet.backends.tensorrt as backend_mod
    from edgedet.trt.cuda import Cuda

    cudart = trt_fakes.FakeCudart(
        fake_trt.gpu, fail={"cudaMalloc": trt_fakes.real_rt.cudaError_t.cudaErrorMemoryAllocation}
    )
    monkeypatch.setattr(backend_mod, "Cuda", lambda: Cuda(cudart))
    with pytest.raises(CudaError, match="cudaMalloc failed: cudaErrorMemoryAllocation"):
        _open(fake_engine)


def test_failed_allocation_releases_what_was_allocated(
    fake_trt, fake_gpu, fake_engine, monkeypatch
):
    import edgedet.backends.tensorrt as backend_mod
    from edgedet.trt.cuda import Cuda

    cudart = trt_fakes.FakeCudart(fake_gpu)
    calls = {"n": 0}
    real_malloc_host = cudart.cudaMallocHost

    def flaky(n):  # the third pinned allocation fails
        calls["n"] += 1
        return (
            (trt_fakes.real_rt.cudaError_t.cudaErrorMemoryAllocation, None)
            if calls["n"] == 3
            else real_malloc_host(n)
        )

    cudart.cudaMallocHost = flaky
    monkeypatch.setattr(backend_mod, "Cuda", lambda: Cuda(cudart))
    with pytest.raises(CudaError, match="cudaMallocHost failed"):
        _open(fake_engine)
    assert not fake_gpu.buffers and not fake_gpu.streams


@pytest.mark.parametrize(
    "profile, fixed, n, executions",
    [((1, 4, 8), None, 8, 1), ((2, 2, 4), None, 3, 1), ((1, 1, 1), 4, 4, 1)],
)
def test_threshold_inputs_do_not_set_the_batch(fake_trt, tmp_path, profile, fixed, n, executions):
    """--runtime-thresholds engines: the static [1] threshold inputs leave the image input's batch
    range alone."""
    eng = write_engine(
        tmp_path / "t.engine",
        trt_fakes.plan_bytes(profile, fixed=fixed, thresholds=True),
        tensorrt_section(),
        batch=fixed or -1,
    )
    with _open(eng) as be:
        assert (be.min_batch, be.max_batch) == (
            (fixed, fixed) if fixed else (profile[0], profile[2])
        )
        thr = {
            "score_threshold": np.array([0.3], np.float32),
            "iou_threshold": np.array([0.5], np.float32),
        }
        out = be.infer({"images": _images(n), **thr})
        assert fake_trt.executions == executions and out["det_scores"].shape == (n, 4)
        np.testing.assert_allclose(out["det_scores"][:, 0], 0.1 * np.arange(1, n + 1), rtol=1e-6)


@pytest.mark.parametrize("as_folder", [False, True])
def test_explicit_plugins_load_without_a_manifest(fake_trt, tmp_path, as_folder):
    """TensorRTBackend(plugins=[...]) / `inspect --plugin` on an engine without a manifest: the
    library is loaded before deserialisation, and host code (a version-compatible plan's) is
    allowed."""
    (tmp_path / "libs").mkdir()
    lib = trt_fakes.fake_plugin_library(tmp_path / "libs" / "libedgedet_nms_plugin.so")
    eng = write_engine(tmp_path / "bare.engine", trt_fakes.plan_bytes(), None)
    with pytest.warns(UserWarning, match="has no manifest"):
        be = _open(eng, plugins=[lib.parent if as_folder else lib])
    with be:
        assert fake_trt.registry.get_creator("EdgeDetNMS", "1", "edgedet") is not None
        assert be._runtime.engine_host_code_allowed is True
    with pytest.warns(UserWarning, match="has no manifest"):
        with _open(eng) as plain:  # nothing named: host code stays disallowed (TensorRT's default)
            assert plain._runtime.engine_host_code_allowed is False
    with (
        pytest.warns(UserWarning, match="has no manifest"),
        pytest.raises(InputError, match="does not exist"),
    ):
        _open(eng, plugins=[tmp_path / "nope.so"])


def _with_arch(lib, sass, ptx=()):
    import json

    (lib.parent / f"{lib.name}.json").write_text(
        json.dumps({"architectures": {"sass": list(sass), "ptx": list(ptx)}})
    )
    return lib


def test_plugin_without_code_for_this_gpu_is_refused_before_loading(fake_trt, tmp_path):
    """A plugin built with -arch=native on another GPU would fail with
    cudaErrorNoKernelImageForDevice at run time."""
    from edgedet.fileio import sha256_file

    lib = _with_arch(
        trt_fakes.fake_plugin_library(tmp_path / "libedgedet_nms_plugin.so"), ["sm_90"]
    )
    rec = {
        "file": lib.name,
        "sha256": sha256_file(lib),
        "creators": [{"name": "EdgeDetNMS", "version": "1", "namespace": "edgedet"}],
    }
    eng = write_engine(
        tmp_path / "p.engine", trt_fakes.plan_bytes(), tensorrt_section(plugins=[rec])
    )
    with pytest.raises(
        CompatibilityError,
        match=r"holds GPU code for sm_90 only.*compute capability 8\.7.*--arch portable",
    ):
        _open(eng)
    assert fake_trt.registry.get_creator("EdgeDetNMS", "1", "edgedet") is None  # not even loaded
    _with_arch(lib, ["sm_80", "sm_86"], ["compute_80"])
    with _open(eng):
        assert fake_trt.registry.get_creator("EdgeDetNMS", "1", "edgedet") is not None
    bare = write_engine(tmp_path / "bare.engine", trt_fakes.plan_bytes(), None)
    _with_arch(lib, ["sm_90"])
    with (
        pytest.warns(UserWarning, match="has no manifest"),
        pytest.raises(CompatibilityError, match="sm_90 only"),
    ):
        _open(bare, plugins=[lib])


def test_embedded_plugin_architectures_come_from_the_manifest(fake_trt, tmp_path):
    rec = {
        "file": "libedgedet_nms_plugin.so",
        "serialized": True,
        "architectures": {"sass": ["sm_90"], "ptx": []},
        "creators": [{"name": "EdgeDetNMS", "version": "1", "namespace": "edgedet"}],
    }
    eng = write_engine(
        tmp_path / "vc.engine",
        trt_fakes.plan_bytes(),
        tensorrt_section(plugins=[rec], version_compatible=True),
    )
    with pytest.raises(
        CompatibilityError, match="libedgedet_nms_plugin.so holds GPU code for sm_90 only"
    ):
        _open(eng)
