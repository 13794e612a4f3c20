"""CUDA sources: compiled with nvcc wherever it exists (CI included); run on a GPU when there is
one.

The NMS kernels (edgedet/csrc, linked into the TensorRT plugin) and the GPU letterbox kernel that
benchmarks/gpu/letterbox.py measures (benchmarks/gpu/letterbox.cu, not part of the runtime) build as
one library here."""

import ctypes
import shutil

import numpy as np
import pytest

from edgedet.cuda_build import KERNEL_SOURCES, compile_library
from edgedet.preprocess import letterbox

needs_nvcc = pytest.mark.skipif(
    shutil.which("nvcc") is None, reason="nvcc (CUDA compiler) not on PATH"
)


@pytest.fixture(scope="module")
def kernels_lib(tmp_path_factory):
    """The kernels + letterbox library, compiled once for this module (CUB makes a build take ~25
    s)."""
    from benchmarks.gpu.letterbox import SOURCE as LETTERBOX_SOURCE

    if shutil.which("nvcc") is None:
        pytest.skip("nvcc (CUDA compiler) not on PATH")
    return compile_library(
        tmp_path_factory.mktemp("csrc") / "libedgedet_kernels.so",
        sources=[*KERNEL_SOURCES, LETTERBOX_SOURCE],
    )


@needs_nvcc
def test_kernels_compile(kernels_lib):
    assert kernels_lib.stat().st_size > 0
    import subprocess

    symbols = subprocess.run(["nm", "-D", str(kernels_lib)], capture_output=True, text=True).stdout
    for name in ("edgedet_letterbox", "edgedet_nms", "edgedet_nms_workspace_size"):
        assert f" T {name}\n" in symbols, f"{name} not exported"


@needs_nvcc
def test_nms_workspace_size_on_host(kernels_lib):
    """edgedet_nms_workspace_size runs on the host: > 0 for valid parameters, 0 for invalid ones."""
    from benchmarks.gpu.nms_kernels import EdgeDetNMSParams, c_params, workspace_size
    from edgedet.nms import NMSParams

    lib = ctypes.CDLL(str(kernels_lib))
    p = NMSParams(max_output_boxes=300, top_k=1000)
    size = workspace_size(lib, c_params(p, 1, 8400, 80))
    assert size >= 16 * 8400 * 80 + 1000 * 1000 // 8  # sort buffers + IoU mask
    assert workspace_size(lib, c_params(p.replace(top_k=10000), 1, 25200, 80)) > size
    assert (
        workspace_size(
            lib, c_params(p, 4, 8400, 80, per_class_boxes=True, anchors_batch=4, data_type=1)
        )
        > 0
    )
    assert workspace_size(lib, c_params(p, 1, 0, 3)) > 0  # no boxes: still valid (all padding)
    # M > 65536
    invalid = [
        c_params(p, 0, 10, 3),
        c_params(p, 1, 10, 0),
        c_params(p, 1, 10, 3, data_type=2),
        c_params(p, 2, 10, 3, anchors_batch=3),
        c_params(p.replace(top_k=0), 1, 25200, 80),
    ]
    zero_k = c_params(p, 1, 10, 3)
    zero_k.max_output_boxes = 0
    nan_scale = c_params(p, 1, 10, 3, anchors_batch=1)
    nan_scale.box_scale[2] = float("nan")
    for params in invalid + [zero_k, nan_scale]:
        assert workspace_size(lib, params) == 0, {
            f: getattr(params, f) for f, _ in EdgeDetNMSParams._fields_[:12]
        }


@needs_nvcc
def test_nms_rejects_bad_arguments_before_touching_the_gpu(kernels_lib):
    """-1 for invalid parameters, a small or misaligned workspace, missing pointers (checked on the
    host)."""
    from benchmarks.gpu.nms_kernels import bind, c_params, workspace_size
    from edgedet.nms import NMSParams

    lib = bind(ctypes.CDLL(str(kernels_lib)))
    p = c_params(NMSParams(max_output_boxes=10, top_k=100), 1, 50, 3)
    need = workspace_size(lib, p)
    fake = 1 << 20  # never dereferenced: every call below is refused before any launch

    def call(params, workspace=fake, size=need, boxes=fake):
        return lib.edgedet_nms(
            ctypes.byref(params),
            boxes,
            fake,
            None,
            None,
            None,
            fake,
            fake,
            fake,
            fake,
            None,
            workspace,
            size,
            None,
        )

    bad = c_params(NMSParams(), 1, 50, 3)
    bad.max_output_boxes = 0
    assert call(bad) == -1
    # smaller than edgedet's own buffers (+ the alignment skip): refused on the host. CUB's scratch,
    # the rest of the workspace, is no longer sized per call (one size query per shape): SortPairs
    # refuses it.
    assert call(p, size=1024) == -1
    assert call(p, workspace=fake + 8, size=1024 + 248) == -1
    assert call(p, workspace=None) == -1
    assert call(p, boxes=None) == -1
    anchored = c_params(NMSParams(), 1, 50, 3, anchors_batch=1)
    # anchors_batch 1 with anchors NULL
    assert call(anchored, size=workspace_size(lib, anchored)) == -1


def test_nms_params_struct_matches_header(tmp_path):
    """The ctypes mirror has the C struct's size and field offsets (host C compiler, no CUDA
    needed)."""
    from benchmarks.gpu.nms_kernels import EdgeDetNMSParams
    from edgedet.cuda_build import CSRC

    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no host C compiler")
    import subprocess

    names = [f for f, _ in EdgeDetNMSParams._fields_]
    prog = tmp_path / "layout.c"
    prog.write_text(
        '#include <stdio.h>\n#include <stddef.h>\n#include "nms_kernels.h"\nint main(void) {\n'
        '  printf("%zu\\n", sizeof(EdgeDetNMSParams));\n'
        + "".join(f'  printf("%zu\\n", offsetof(EdgeDetNMSParams, {f}));\n' for f in names)
        + "  return 0;\n}\n"
    )
    subprocess.run([cc, f"-I{CSRC}", "-o", str(tmp_path / "layout"), str(prog)], check=True)
    out = [
        int(v)
        for v in subprocess.run(
            [str(tmp_path / "layout")], capture_output=True, text=True, check=True
        ).stdout.split()
    ]
    assert out == [ctypes.sizeof(EdgeDetNMSParams)] + [
        getattr(EdgeDetNMSParams, f).offset for f in names
    ]


@needs_nvcc
def test_compile_error_is_reported(tmp_path):
    from edgedet.errors import EdgeDetError

    bad = tmp_path / "bad.cu"
    bad.write_text('extern "C" int f() { return undefined_symbol; }\n')
    with pytest.raises(EdgeDetError, match="nvcc failed"):
        compile_library(tmp_path / "bad.so", sources=[bad])


@pytest.mark.cuda
@needs_nvcc
@pytest.mark.parametrize("shape", [(480, 640), (720, 1280), (300, 200), (320, 320)])
def test_gpu_letterbox_matches_cpu(kernels_lib, shape):
    cp = pytest.importorskip("cupy", reason="the GPU tests use CuPy for device buffers")
    from benchmarks.gpu.letterbox import Params as LetterboxParams

    lib = ctypes.CDLL(str(kernels_lib))
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    ref, info = letterbox(img, 320, 320, 114)
    new_w, new_h = round(shape[1] * info.scale), round(shape[0] * info.scale)
    src = cp.asarray(img)
    dst = cp.zeros((1, 3, 320, 320), cp.float32)
    p = LetterboxParams(
        shape[0],
        shape[1],
        shape[1] * 3,
        320,
        320,
        new_h,
        new_w,
        int(info.pad_x),
        int(info.pad_y),
        114.0,
        0,
    )
    rc = lib.edgedet_letterbox(
        ctypes.c_void_p(src.data.ptr), ctypes.c_void_p(dst.data.ptr), 1, p, ctypes.c_void_p(0)
    )
    cp.cuda.runtime.deviceSynchronize()
    assert rc == 0
    got = cp.asnumpy(dst)[0].transpose(1, 2, 0) * 255
    diff = np.abs(got - ref.astype(np.float32))
    assert diff.max() <= 1.0 + 1e-3 and (diff > 0.5).mean() < 0.05


def test_one_nvcc_command_line(tmp_path):
    """Shared library (kernels, plugin) and executable (plugin harness) come from the same command
    builder."""
    from edgedet.cuda_build import nvcc_command

    lib = nvcc_command(
        "nvcc", ["k.cu"], tmp_path / "k.so", ["-arch=sm_87"], [tmp_path], extra=["-lineinfo"]
    )
    assert lib == [
        "nvcc",
        "-O3",
        "-std=c++17",
        "-fmad=false",
        "-shared",
        "-arch=sm_87",
        "-Xcompiler",
        "-fPIC",
        f"-I{tmp_path}",
        "-lineinfo",
        "-o",
        str(tmp_path / "k.so"),
        "k.cu",
    ]
    exe = nvcc_command(
        "nvcc",
        ["h.cpp", "k.cu"],
        "h",
        optimize="-O2",
        shared=False,
        host_flags=("-Wno-x",),
        linker_flags=("--no-undefined",),
        defines=["REAL"],
    )
    assert exe == [
        "nvcc",
        "-O2",
        "-std=c++17",
        "-fmad=false",
        "-Xcompiler",
        "-Wno-x",
        "-Xlinker",
        "--no-undefined",
        "-DREAL",
        "-o",
        "h",
        "h.cpp",
        "k.cu",
    ]
