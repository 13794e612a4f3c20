"""CUDA sources: compiled with nvcc wherever it exists (CI included); run on a GPU when there is one."""

import ctypes
import shutil

import numpy as np
import pytest

from edgedet.cuda_build import compile_library
from edgedet.preprocess import letterbox

needs_nvcc = pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc (CUDA compiler) not on PATH")


@needs_nvcc
def test_kernels_compile(tmp_path):
    lib = compile_library(tmp_path / "libedgedet_kernels.so")
    assert lib.stat().st_size > 0
    import subprocess

    symbols = subprocess.run(["nm", "-D", str(lib)], capture_output=True, text=True).stdout
    assert "edgedet_letterbox" in symbols


@needs_nvcc
def test_compile_error_is_reported(tmp_path):
    from edgedet.errors import EdgeDetError

    bad = tmp_path / "bad.cu"
    bad.write_text("extern \"C\" int f() { return undefined_symbol; }\n")
    with pytest.raises(EdgeDetError, match="nvcc failed"):
        compile_library(tmp_path / "bad.so", sources=[bad])


class _Params(ctypes.Structure):
    _fields_ = [(n, ctypes.c_int) for n in ("src_h", "src_w", "src_pitch", "dst_h", "dst_w", "new_h", "new_w",
                                            "pad_x", "pad_y")] + [("pad_value", ctypes.c_float), ("out_uint8", ctypes.c_int)]


@pytest.mark.cuda
@needs_nvcc
@pytest.mark.parametrize("shape", [(480, 640), (720, 1280), (300, 200), (320, 320)])
def test_gpu_letterbox_matches_cpu(tmp_path, shape):
    cp = pytest.importorskip("cupy", reason="the GPU tests use CuPy for device buffers")
    lib = ctypes.CDLL(str(compile_library(tmp_path / "libk.so")))
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    ref, info = letterbox(img, 320, 320, 114)
    new_w, new_h = round(shape[1] * info.scale), round(shape[0] * info.scale)
    src = cp.asarray(img)
    dst = cp.zeros((1, 3, 320, 320), cp.float32)
    p = _Params(shape[0], shape[1], shape[1] * 3, 320, 320, new_h, new_w, int(info.pad_x), int(info.pad_y), 114.0, 0)
    rc = lib.edgedet_letterbox(ctypes.c_void_p(src.data.ptr), ctypes.c_void_p(dst.data.ptr), 1, p, ctypes.c_void_p(0))
    cp.cuda.runtime.deviceSynchronize()
    assert rc == 0
    got = cp.asnumpy(dst)[0].transpose(1, 2, 0) * 255
    diff = np.abs(got - ref.astype(np.float32))
    assert diff.max() <= 1.0 + 1e-3 and (diff > 0.5).mean() < 0.05
