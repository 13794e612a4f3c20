"""EdgeDetNMS registers its creator when the library is merely dlopen'ed (DeepStream / Triton:
LD_PRELOAD, Triton's --backend-config=tensorrt,plugins=), and IPluginRegistry.load_library still
works on top of that.

Needs nvcc and TensorRT's C++ headers (skips otherwise, like
tests/edgedet/trt/test_plugin_build.py). The
registration tests also need a TensorRT runtime of the headers' major version in Python (the lean
runtime wheel `tensorrt-lean-cu13-*` is enough: its plugin registry runs without a GPU); each
loading order runs in a fresh interpreter, because a registration lasts for the process.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgedet.errors import EdgeDetError
from edgedet.nms import opdef
from edgedet.trt import plugin_build as pb

# one real plugin build (~30 s on 2 cores) where nvcc and headers exist
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def plugin(tmp_path_factory):
    """The plugin library built once for this module, and the TensorRT headers it was built with."""
    if shutil.which("nvcc") is None:
        pytest.skip("nvcc (CUDA compiler) not on PATH")
    try:
        headers = pb.find_headers()
    except EdgeDetError as exc:
        pytest.skip(
            f"no TensorRT C++ headers on this machine ({str(exc).split(';')[0]}); set TENSORRT_ROOT"
        )
    out = tmp_path_factory.mktemp("plugin") / opdef.PLUGIN_LIBRARY
    return pb.build_plugin(output=out).path, headers


def _run(cmd: list[str]) -> str:
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout


def test_library_carries_a_load_time_registrar_and_no_link_to_tensorrt(plugin):
    """What the loader runs at dlopen: the registrar object and the function its initialiser calls;
    TensorRT is found through the loader by the sonames of the headers' major version, not linked
    (lean and full alike).
    """
    lib, headers = plugin
    symbols = _run(["nm", "-C", str(lib)])
    assert "(anonymous namespace)::gLoadTimeRegistrar" in symbols
    assert "(anonymous namespace)::registerAtLoad()" in symbols
    # the static initialiser that constructs it
    assert "_GLOBAL__sub_I_edgedet_nms_plugin.cpp" in symbols
    undefined = _run(["nm", "-D", "--undefined-only", str(lib)])
    assert " dlopen" in undefined and " dlsym" in undefined and "getPluginRegistry" not in undefined
    needed = [line for line in _run(["readelf", "-d", str(lib)]).splitlines() if "(NEEDED)" in line]
    assert not any("nvinfer" in line for line in needed), needed
    text = lib.read_bytes()
    major = headers.version.major
    for soname in (
        f"libnvinfer.so.{major}",
        f"libnvinfer_lean.so.{major}",
        f"libnvinfer_dispatch.so.{major}",
    ):
        assert soname.encode() + b"\0" in text
    assert b"getPluginRegistry\0" in text
    exported = _run(["nm", "-D", "--defined-only", str(lib)])
    assert "getCreators" in exported and "setLoggerFinder" in exported  # the loadLibrary path stays


# One fresh interpreter per loading order: it prints whether EdgeDetNMS v1 / edgedet is registered
# after each step. `dlopen` is ctypes.CDLL (what DeepStream / Triton do), `load_library`
# IPluginRegistry.loadLibrary.
PROBE = r"""
import ctypes, importlib, sys
lib, steps = sys.argv[1], sys.argv[2].split(",")
trt = importlib.import_module(sys.argv[3])
reg = trt.get_plugin_registry()
has = lambda: reg.get_creator("EdgeDetNMS", "1", "edgedet") is not None
print("start", has())
for step in steps:
    if step == "dlopen":
        ctypes.CDLL(lib)
        print("dlopen", has())
    elif step == "load_library":
        handle = reg.load_library(lib)
        print("load_library", handle is not None, has())
        reg.deregister_library(handle)
        print("deregister_library", has())
"""


@pytest.fixture(scope="module")
def runtime(plugin):
    """A TensorRT Python module of the headers' major version (full or lean), its name and its
    library folder."""
    _, headers = plugin
    for name, libs in (
        ("tensorrt", "tensorrt_libs"),
        ("tensorrt_lean", "tensorrt_lean_libs"),
        ("tensorrt_lean_bindings", "tensorrt_lean_libs"),
    ):
        probe = subprocess.run(
            [
                sys.executable,
                "-c",
                (
                    f"import {name} as t, importlib.util as u; print(t.__version__); s ="
                    f" u.find_spec('{libs}'); print(list(s.submodule_search_locations)[0] if s"
                    " else '')"
                ),
            ],
            capture_output=True,
            text=True,
        )
        if probe.returncode == 0:
            version, folder = (probe.stdout.splitlines() + ["", ""])[:2]
            if int(version.split(".")[0]) == headers.version.major:
                return name, folder
    pytest.skip(
        f"no TensorRT {headers.version.major}.x Python module (tensorrt, tensorrt_lean, "
        "tensorrt_lean_bindings) to load the plugin into"
    )


def _probe(lib: Path, steps: str, module: str, env: dict | None = None) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(lib), steps, module],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.split("\n")[:-1]


def test_dlopen_alone_registers_the_creator(plugin, runtime):
    lib, _ = plugin
    assert _probe(lib, "dlopen", runtime[0]) == ["start False", "dlopen True"]


def test_load_library_alone_and_after_dlopen(plugin, runtime):
    """loadLibrary fails when a creator is already registered (NvInferRuntimeCommon.h):
    getCreators() withdraws
    the load-time registration first, so load_library succeeds after a dlopen and owns the creator.
    """
    lib, _ = plugin
    assert _probe(lib, "load_library", runtime[0]) == [
        "start False",
        "load_library True True",
        "deregister_library False",
    ]
    assert _probe(lib, "dlopen,load_library", runtime[0]) == [
        "start False",
        "dlopen True",
        "load_library True True",
        "deregister_library False",
    ]


def test_ld_preload_before_tensorrt_is_loaded(plugin, runtime):
    """LD_PRELOAD (DeepStream, Triton): the library is initialised before the host loads TensorRT,
    so it loads the runtime itself by soname from the library path, and the host later gets that
    same registry."""
    lib, _ = plugin
    module, folder = runtime
    env = dict(
        os.environ,
        LD_PRELOAD=str(lib),
        LD_LIBRARY_PATH=os.pathsep.join(
            p for p in (folder, os.environ.get("LD_LIBRARY_PATH", "")) if p
        ),
    )
    assert _probe(lib, "", module, env) == ["start True"]
