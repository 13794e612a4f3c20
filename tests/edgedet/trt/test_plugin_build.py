"""`edgedet plugin build`: header discovery, version parsing, the nvcc command, errors, output path,
and the plugin source kept in step with NMSParams / opdef. The real build needs TensorRT's headers.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgedet.cli.main import cli
from edgedet.errors import DependencyError, EdgeDetError, InputError
from edgedet.nms import opdef
from edgedet.nms.params import NMSParams
from edgedet.trt import plugin_build as pb
from edgedet.trt.version import TRTVersion

PLUGIN_CPP = pb.CSRC / "plugin" / "edgedet_nms_plugin.cpp"
ROOT = Path(__file__).resolve().parents[3]
# benchmarks/ (the GPU harness's compile command) is not an installed package
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# NvInferVersion.h as TensorRT 10.3.0 writes it (plain numbers) and as 10.12+/11.x do (aliases).
V10_3 = """#ifndef NV_INFER_VERSION_H
#define NV_INFER_VERSION_H
#define NV_TENSORRT_MAJOR 10 //!< TensorRT major version.
#define NV_TENSORRT_MINOR 3 //!< TensorRT minor version.
#define NV_TENSORRT_PATCH 0 //!< TensorRT patch version.
#define NV_TENSORRT_BUILD 26 //!< TensorRT build number.
#define NV_TENSORRT_LWS_MAJOR 0
#endif
"""
V11_1 = """#define TRT_MAJOR_ENTERPRISE 11
#define TRT_MINOR_ENTERPRISE 1
#define TRT_PATCH_ENTERPRISE 0
#define TRT_BUILD_ENTERPRISE 106
#define NV_TENSORRT_MAJOR TRT_MAJOR_ENTERPRISE //!< TensorRT major version.
#define NV_TENSORRT_MINOR TRT_MINOR_ENTERPRISE //!< TensorRT minor version.
#define NV_TENSORRT_PATCH TRT_PATCH_ENTERPRISE //!< TensorRT patch version.
#define NV_TENSORRT_BUILD TRT_BUILD_ENTERPRISE //!< TensorRT build number.
"""


def fake_include(root: Path, version_text: str = V10_3) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "NvInfer.h").write_text("// fake\n")
    (root / "NvInferVersion.h").write_text(version_text)
    return root


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def one_line_error(result, *fragments):
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.startswith("edgedet: error")]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    for f in fragments:
        assert f in lines[0], lines[0]


@pytest.fixture
def no_system_headers(monkeypatch, tmp_path):
    """Header search limited to folders under tmp_path (machines with TensorRT installed stay
    deterministic)."""
    monkeypatch.delenv("TENSORRT_ROOT", raising=False)
    real = pb.header_search_dirs
    monkeypatch.setattr(
        pb,
        "header_search_dirs",
        lambda explicit=None: real(explicit) if explicit else [tmp_path / "sys" / "include"],
    )


# ------------------------------------------------------------------ versions and headers


@pytest.mark.parametrize(
    "text, expected", [(V10_3, TRTVersion(10, 3, 0, 26)), (V11_1, TRTVersion(11, 1, 0, 106))]
)
def test_header_version(tmp_path, text, expected):
    (tmp_path / "NvInferVersion.h").write_text(text)
    assert pb.read_header_version(tmp_path / "NvInferVersion.h") == expected


def test_header_version_refuses_other_files(tmp_path):
    (tmp_path / "NvInferVersion.h").write_text("#define SOMETHING 1\n")
    with pytest.raises(InputError, match="NV_TENSORRT_MAJOR"):
        pb.read_header_version(tmp_path / "NvInferVersion.h")


def test_find_headers_first_complete_folder_wins(tmp_path):
    incomplete = tmp_path / "a"
    incomplete.mkdir()
    (incomplete / "NvInfer.h").write_text("")  # no NvInferVersion.h: skipped
    first = fake_include(tmp_path / "b", V11_1)
    fake_include(tmp_path / "c", V10_3)
    found = pb.find_headers(candidates=[incomplete, first, tmp_path / "c"])
    assert found.include == first and found.version == TRTVersion(11, 1, 0, 106)


def test_tensorrt_root_is_searched_first(monkeypatch, tmp_path):
    fake_include(tmp_path / "TensorRT-10.3.0.26" / "include")
    monkeypatch.setenv("TENSORRT_ROOT", str(tmp_path / "TensorRT-10.3.0.26"))
    dirs = pb.header_search_dirs()
    assert dirs[0] == tmp_path / "TensorRT-10.3.0.26" / "include"
    assert Path("/usr/include/aarch64-linux-gnu") in dirs  # JetPack
    assert pb.find_headers().version == TRTVersion(10, 3, 0, 26)


def test_explicit_folder_is_the_only_candidate(tmp_path):
    assert pb.header_search_dirs(tmp_path) == [tmp_path]


@pytest.mark.parametrize(
    "text",
    [
        "#define NV_TENSORRT_MAJOR 8\n#define NV_TENSORRT_MINOR 6\n",
        "#define NV_TENSORRT_MAJOR 10\n#define NV_TENSORRT_MINOR 2\n",
        "#define NV_TENSORRT_MAJOR 12\n#define NV_TENSORRT_MINOR 0\n",
    ],
)
def test_unsupported_header_version(tmp_path, text):
    fake_include(tmp_path, text)
    with pytest.raises(DependencyError, match="10.3 to 11.x"):
        pb.find_headers(tmp_path)


def test_missing_headers_name_every_folder_and_the_fix(tmp_path):
    with pytest.raises(DependencyError) as exc:
        pb.find_headers(candidates=[tmp_path / "x", tmp_path / "y"])
    msg = str(exc.value)
    assert str(tmp_path / "x") in msg and str(tmp_path / "y") in msg
    assert "libnvinfer-dev" in msg and "TENSORRT_ROOT" in msg and "--tensorrt-include" in msg


# ------------------------------------------------------------------ command and output


def test_nvcc_command(tmp_path):
    cmd = pb.plugin_nvcc_command(
        "/cuda/bin/nvcc", tmp_path / "inc", tmp_path / "out.so", ["-arch=sm_87"]
    )
    assert cmd[0] == "/cuda/bin/nvcc"
    for flag in (
        "-shared",
        "-std=c++17",
        "-fmad=false",
        "-arch=sm_87",
        f"-I{tmp_path / 'inc'}",
        f"-I{pb.CSRC}",
    ):
        assert flag in cmd
    assert cmd[cmd.index("-o") + 1] == str(tmp_path / "out.so")
    assert cmd[-2:] == [str(pb.CSRC / "nms_kernels.cu"), str(PLUGIN_CPP)]
    assert "-lnvinfer" not in " ".join(cmd)  # interface-only use of TensorRT: no link dependency


def test_arch_flags():
    assert pb.arch_flags("sm_87") == ["-arch=sm_87"]
    assert pb.arch_flags("native") == ["-arch=native"]
    with pytest.raises(InputError, match="sm_87"):
        pb.arch_flags("orin")


def test_default_output_is_the_versioned_cache_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("EDGEDET_CACHE_DIR", str(tmp_path / "cache"))
    assert (
        pb.default_output(TRTVersion(10, 3, 0, 26))
        == tmp_path / "cache" / "plugins" / "10.3" / opdef.PLUGIN_LIBRARY
    )
    from edgedet.trt import plugins

    assert (
        pb.default_output(TRTVersion(10, 3)).parent
        == plugins.default_plugin_dirs(TRTVersion(10, 3))[0]
    )


def _fake_nvcc(monkeypatch, tmp_path, returncode=0):
    """Stand-in for the compiler: writes the -o file; `nvcc --version` answers like CUDA 13.0."""
    calls = []
    nvcc = tmp_path / "cuda" / "bin" / "nvcc"
    nvcc.parent.mkdir(parents=True, exist_ok=True)
    nvcc.write_text("#!/bin/sh\n")

    def fake_run(cmd, **kwargs):
        calls.append(cmd)
        if "--version" in cmd:
            return pb.subprocess.CompletedProcess(
                cmd, 0, "Cuda compilation tools, release 13.0, V13.0.88\n", ""
            )
        if returncode == 0:
            Path(cmd[cmd.index("-o") + 1]).write_bytes(b"\x7fELF fake library")
        return pb.subprocess.CompletedProcess(
            cmd, returncode, "", "plugin.cpp(12): error: something is wrong\n"
        )

    monkeypatch.setattr(pb.subprocess, "run", fake_run)
    monkeypatch.setattr(pb, "_version_notes", lambda version: [])
    return tmp_path / "cuda", calls


def test_build_writes_library_and_manifest_in_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("EDGEDET_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TENSORRT_ROOT", str(tmp_path / "trt"))  # searched first
    fake_include(tmp_path / "trt" / "include")
    cuda_home, calls = _fake_nvcc(monkeypatch, tmp_path)
    r = run("plugin", "build", "--cuda-home", cuda_home, "--arch", "sm_87")
    assert r.exit_code == 0, r.output
    lib = tmp_path / "cache" / "plugins" / "10.3" / opdef.PLUGIN_LIBRARY
    assert lib.read_bytes() == b"\x7fELF fake library"
    assert not list(lib.parent.glob(".*"))  # no temporary file left behind
    m = json.loads((lib.parent / f"{opdef.PLUGIN_LIBRARY}.json").read_text())
    assert m["schema"] == pb.MANIFEST_SCHEMA and m["tensorrt"]["version"] == "10.3.0.26"
    assert m["creators"] == [{"name": "EdgeDetNMS", "version": "1", "namespace": "edgedet"}]
    assert m["nvcc"]["version"] == "13.0.88" and m["arch"] == ["-arch=sm_87"]
    assert set(m["sources"]) == set(pb.SOURCES) and len(m["sha256"]) == 64
    compile_cmd = next(c for c in calls if "-o" in c)
    assert "-arch=sm_87" in compile_cmd and compile_cmd[0] == str(cuda_home / "bin" / "nvcc")


def test_nvcc_failure_is_one_line_and_leaves_nothing(monkeypatch, tmp_path):
    inc = fake_include(tmp_path / "inc")
    cuda_home, _ = _fake_nvcc(monkeypatch, tmp_path, returncode=1)
    out = tmp_path / "out" / "lib.so"
    r = run(
        "plugin",
        "build",
        "--tensorrt-include",
        inc,
        "--cuda-home",
        cuda_home,
        "-o",
        out,
        "--arch",
        "sm_87",
    )
    one_line_error(r, "nvcc failed", "something is wrong")
    assert not out.exists() and not list(out.parent.glob("*"))


# ------------------------------------------------------------------ CLI errors


def test_cli_missing_headers(tmp_path, no_system_headers):
    one_line_error(
        run("plugin", "build"),
        "TensorRT C++ headers",
        str(tmp_path / "sys" / "include"),
        "libnvinfer-dev",
    )
    one_line_error(run("plugin", "build", "--tensorrt-include", tmp_path), "--tensorrt-include")
    assert run("plugin", "build").exit_code == DependencyError.exit_code


def test_cli_missing_nvcc(monkeypatch, tmp_path):
    inc = fake_include(tmp_path / "inc")
    one_line_error(
        run("plugin", "build", "--tensorrt-include", inc, "--cuda-home", tmp_path / "nocuda"),
        "nvcc was not found",
        "--cuda-home",
    )
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("CUDA_HOME", raising=False)
    one_line_error(run("plugin", "build", "--tensorrt-include", inc), "nvcc", "CUDA toolkit")


def test_cli_missing_sources(monkeypatch, tmp_path):
    monkeypatch.setattr(pb, "CSRC", tmp_path)
    one_line_error(
        run("plugin", "build", "--arch", "sm_87"), "plugin sources missing", "nms_kernels.cu"
    )


def test_cli_bad_arch():
    one_line_error(run("plugin", "build", "--arch", "orin"), "--arch 'orin'")


def test_plugin_is_a_listed_command():
    assert "plugin" in run("--help").output
    assert "build" in run("plugin", "--help").output


# ------------------------------------------------------------------ the C++ source vs the Python
# side


def _cpp() -> str:
    return PLUGIN_CPP.read_text()


def test_plugin_fields_match_nms_params():
    table = re.search(r"kFIELDS\[\] = \{(.*?)\};", _cpp(), re.S).group(1)
    fields = re.findall(r'\{"(\w+)", PluginFieldType::k(\w+), (\d+)\}', table)
    params = dataclasses.fields(NMSParams)
    assert [f[0] for f in fields] == [p.name for p in params] + list(opdef.INPUT_ROLE_FIELDS)
    assert [f[1:] for f in fields[len(params) :]] == [("INT32", "1")] * len(opdef.INPUT_ROLE_FIELDS)
    defaults = NMSParams()
    for name, kind, length in fields[: len(params)]:
        value = getattr(defaults, name)
        assert int(length) == (len(value) if isinstance(value, tuple) else 1), name
        assert kind == ("FLOAT32" if isinstance(value, (float, tuple)) else "INT32"), name


def test_plugin_defaults_match_nms_params():
    body = re.search(r"struct Attributes\s*\{(.*?)void\* slot", _cpp(), re.S).group(1)
    members = dict(re.findall(r"(?:float|int32_t) (\w+)(?:\[4\])?\{([^}]*)\};", body))
    for name, value in NMSParams().to_dict().items():
        parsed = [float(v.strip().rstrip("F")) for v in members[name].split(",")]
        expected = [float(v) for v in (value if isinstance(value, list) else [value])]
        assert parsed == expected, name


def test_plugin_registry_key_matches_opdef():
    src = _cpp()
    for const, value in (
        ("kPLUGIN_NAME", opdef.PLUGIN_NAME),
        ("kPLUGIN_VERSION", opdef.PLUGIN_VERSION),
        ("kPLUGIN_NAMESPACE", opdef.PLUGIN_NAMESPACE),
    ):
        assert f'{const} = "{value}"' in src
    assert (
        'extern "C"' in src
        and "getCreators(int32_t& nbCreators)" in src
        and "setLoggerFinder(ILoggerFinder*" in src
    )


# ------------------------------------------------------------------ real builds


def _headers_or_skip():
    if shutil.which("nvcc") is None:
        pytest.skip("nvcc (CUDA compiler) not on PATH")
    try:
        return pb.find_headers()
    except EdgeDetError as exc:
        pytest.skip(f"no TensorRT C++ headers on this machine ({str(exc).split(';')[0]})")


@pytest.mark.slow
def test_plugin_compiles_where_headers_exist(tmp_path):
    """Compile and link for nvcc's default architecture (no GPU needed) where TensorRT headers are
    installed."""
    _headers_or_skip()
    result = pb.build_plugin(output=tmp_path / opdef.PLUGIN_LIBRARY, arch=None)
    assert result.path.stat().st_size > 0
    exported = pb.subprocess.run(
        ["nm", "-D", "--defined-only", str(result.path)], capture_output=True, text=True
    ).stdout
    assert "getCreators" in exported and "setLoggerFinder" in exported


@pytest.mark.trt
def test_built_plugin_registers_in_tensorrt(tmp_path):
    """The library loads through IPluginRegistry.load_library and provides EdgeDetNMS v1 in
    namespace edgedet."""
    _headers_or_skip()
    from edgedet.trt.loader import import_tensorrt
    from edgedet.trt.plugins import Creator, load_library

    trt = import_tensorrt(need_builder=True)
    headers = pb.find_headers()
    if (headers.version.major, headers.version.minor) != (trt.version.major, trt.version.minor):
        pytest.skip(f"headers are TensorRT {headers.version}, Python's TensorRT is {trt.version}")
    lib = pb.build_plugin(output=tmp_path / opdef.PLUGIN_LIBRARY).path
    added = load_library(trt.module, lib)
    assert Creator(opdef.PLUGIN_NAME, opdef.PLUGIN_VERSION, opdef.PLUGIN_NAMESPACE) in added
    creator = trt.module.get_plugin_registry().get_creator(
        opdef.PLUGIN_NAME, opdef.PLUGIN_VERSION, opdef.PLUGIN_NAMESPACE
    )
    assert [f.name for f in creator.field_names] == [f.name for f in dataclasses.fields(NMSParams)]


# The plugin's host logic, run for real without TensorRT's libraries or a GPU: plugin_harness.cpp
# (compiled against the same headers) plays TensorRT's part - creator lookup, fields as the ONNX
# parser passes them, format negotiation, configurePlugin, workspace, serialisation round trip,
# onShapeChange, enqueue - for every input combination, with the kernels replaced by a stub that
# records the parameters it receives.
PLUGIN_FIELDS = [f.name for f in dataclasses.fields(NMSParams)] + list(opdef.INPUT_ROLE_FIELDS)


def test_plugin_host_logic_with_stub_kernels(tmp_path):
    from benchmarks.gpu.plugin_harness import compile_command

    headers = _headers_or_skip()
    exe = tmp_path / "harness"
    built = pb.subprocess.run(
        compile_command(headers.include, exe, real_kernels=False), capture_output=True, text=True
    )
    assert built.returncode == 0, built.stderr[-2000:]
    ran = pb.subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0 and ran.stdout.strip().endswith("OK"), ran.stdout + ran.stderr
    fields = [line.split()[1] for line in ran.stdout.splitlines() if line.startswith("FIELD ")]
    assert fields == PLUGIN_FIELDS
    combos = [line.split()[1:3] for line in ran.stdout.splitlines() if line.startswith("COMBO ")]
    # 2 x 2 x 2 combinations x (stated, ranks)
    assert len(combos) == 16 and len({tuple(c) for c in combos}) == 16


@pytest.mark.slow
def test_plugin_harness_with_real_kernels_compiles(tmp_path):
    """benchmarks/gpu/run.sh runs this build on a GPU (benchmarks/gpu/plugin_harness.py); here it
    must compile."""
    from benchmarks.gpu.plugin_harness import compile_command

    headers = _headers_or_skip()
    built = pb.subprocess.run(
        compile_command(headers.include, tmp_path / "harness_gpu", ["-arch=sm_87"]),
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr[-2000:]


def test_kernels_ask_cub_once_and_leave_other_errors_alone():
    """nms_kernels.cu (GPU-only code, read as source here; benchmarks/gpu/run.sh runs it):
    edgedet_nms takes CUB's scratch from the caller's workspace instead of repeating the size query,
    and checks its launches with cudaPeekAtLastError, which does not clear (swallow) an error left
    by someone else's launch.
    """
    src = (pb.CSRC / "nms_kernels.cu").read_text()
    entry = src[src.index('extern "C" int edgedet_nms(') :]
    assert "layout(params, false)" in entry and "layout(params)" not in entry
    run_body = src[
        src.index("int run(const EdgeDetNMSParams* p") : src.index(
            'extern "C" size_t edgedet_nms_workspace_size'
        )
    ]
    assert "cudaPeekAtLastError()" in run_body and "cudaGetLastError" not in run_body


# ------------------------------------------------------------------ GPU architectures (issue 12
# item 6)


def test_portable_arch_flags_and_what_they_record():
    flags = pb.arch_flags("portable")
    assert (
        "-gencode=arch=compute_87,code=sm_87" in flags
        and "-gencode=arch=compute_80,code=compute_80" in flags
    )
    assert pb.architectures(flags) == {
        "sass": ["sm_80", "sm_86", "sm_87", "sm_89", "sm_90"],
        "ptx": ["compute_80"],
    }
    assert pb.architectures(["-arch=sm_87"]) == {"sass": ["sm_87"], "ptx": ["compute_87"]}
    # -arch=native: machine code for this machine's GPUs only, no PTX (nvcc 13 docs)
    assert pb.architectures(["-arch=native"], ["8.6"]) == {"sass": ["sm_86"], "ptx": []}
    assert pb.architectures(["-arch=native"], []) is None and pb.architectures([]) is None


def test_build_records_architectures(monkeypatch, tmp_path):
    inc = fake_include(tmp_path / "inc")
    cuda_home, _ = _fake_nvcc(monkeypatch, tmp_path)
    out = tmp_path / "out" / opdef.PLUGIN_LIBRARY
    assert (
        run(
            "plugin",
            "build",
            "--tensorrt-include",
            inc,
            "--cuda-home",
            cuda_home,
            "-o",
            out,
            "--arch",
            "portable",
        ).exit_code
        == 0
    )
    m = json.loads(pb.manifest_path(out).read_text())
    assert m["architectures"]["ptx"] == ["compute_80"] and "sm_87" in m["architectures"]["sass"]
    from edgedet.trt import plugins

    assert plugins.library_architectures(out) == m["architectures"]


@pytest.mark.parametrize(
    "arch, cc, ok",
    [
        ({"sass": ["sm_86"], "ptx": []}, (8, 6), True),
        ({"sass": ["sm_86"], "ptx": []}, (8, 7), True),  # same major, higher minor
        ({"sass": ["sm_86"], "ptx": []}, (8, 0), False),
        ({"sass": ["sm_86"], "ptx": []}, (9, 0), False),
        ({"sass": ["sm_87"], "ptx": ["compute_87"]}, (9, 0), True),  # PTX JIT
        ({"sass": [], "ptx": ["compute_80"]}, (12, 0), True),
        ({"sass": [], "ptx": ["compute_90"]}, (8, 7), False),
    ],
)
def test_plugin_code_runs_on(arch, cc, ok):
    from edgedet.trt import plugins

    assert plugins.runs_on(arch, cc) is ok
