"""edgedet/onnx/engine/build.py wiring, against the builder stand-in in trt_build_fakes.py.

These tests check which TensorRT calls the builder makes, in which order, with which flags and
shapes, and what it writes (plain plan bytes, manifest, timing cache). No engine is built:
the stand-in returns fixed bytes. Real builds are in test_trt_integration.py (marked `trt`).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trt_build_fakes
import trt_fakes
from test_trt_strip import model_with_local_function

from edgedet.errors import DependencyError, ExportError, InputError
from edgedet.fileio import sha256_file
from edgedet.manifest import InputInfo, Manifest, manifest_path, read_manifest, write_manifest
from edgedet.nms import opdef
from edgedet.onnx.engine.build import build_engine, parser_errors
from edgedet.onnx.engine.flags import BuildOptions
from edgedet.onnx.engine.profiles import BatchRange
from edgedet.trt.loader import TensorRT
from edgedet.trt.version import TRTVersion


def nms_onnx(tmp_path: Path, dynamic=True) -> Path:
    """A dynamic-batch 'images' model whose EdgeDetNMS node carries a local function, + manifest."""
    import onnx
    from onnx import TensorProto, helper

    m = model_with_local_function()
    b = "batch" if dynamic else 1
    m.graph.input[0].CopyFrom(
        helper.make_tensor_value_info("images", TensorProto.FLOAT, [b, 3, 8, 8])
    )
    m.graph.output[0].CopyFrom(helper.make_tensor_value_info("z", TensorProto.FLOAT, [b, 3, 8, 8]))
    m.graph.node[0].input[0] = "images"
    path = tmp_path / "model.onnx"
    onnx.save(m, str(path))
    write_manifest(
        path,
        Manifest(
            family="tiny",
            model="nms",
            class_names=["a"],
            output_kind="nms",
            input=InputInfo("images", (-1 if dynamic else 1, 3, 8, 8)),
            precision={"mode": "fp16"},
            source={"weights": "w.pt", "sha256": "cd" * 32},
        ),
    )
    return path


@pytest.fixture
def use(monkeypatch):
    """Install a stand-in TensorRT of a given version into edgedet.onnx.engine.build."""
    import edgedet.onnx.engine.build as build_mod
    from edgedet.trt import plugins

    monkeypatch.setattr(plugins, "_LOADED", {})
    monkeypatch.setattr(
        build_mod, "_gpu_record", lambda o: {"name": "Fake GPU", "compute_capability": "8.7"}
    )

    def install(version="10.3.0.30", **kw):
        module = trt_build_fakes.make_module(version, **kw)
        monkeypatch.setattr(
            build_mod,
            "import_tensorrt",
            lambda need_builder=False: TensorRT(
                module, "tensorrt", TRTVersion.parse(version), "full"
            ),
        )
        return module

    return install


def test_trt_10_3_strips_function_parses_bytes_and_writes_everything(use, tmp_path):
    trt = use("10.3.0.30")
    onnx_path = nms_onnx(tmp_path)
    lib = trt_fakes.fake_plugin_library(tmp_path / opdef.PLUGIN_LIBRARY)
    cache = tmp_path / "timing.cache"
    said = []
    opts = BuildOptions(
        batch=BatchRange(1, 2, 4),
        workspace=1 << 30,
        timing_cache=str(cache),
        opt_level=4,
        plugins=[str(lib)],
    )
    result = build_engine(onnx_path, tmp_path / "model.engine", opts, say=said.append)

    # 1 << int(STRONGLY_TYPED), STRONGLY_TYPED == 1 in 10.x
    assert (
        "create_network",
        1 << 1,
    ) in trt.calls
    parse = next(c for c in trt.calls if c[0].startswith("parse"))
    # stripped model parsed from memory, weights beside the file
    assert parse[0] == "parse" and parse[2] == str(onnx_path)
    assert trt.config.profiles == [{"images": ((1, 3, 8, 8), (2, 3, 8, 8), (4, 3, 8, 8))}]
    assert ("set_memory_pool_limit", "WORKSPACE", 1 << 30) in trt.calls
    assert trt.config.builder_optimization_level == 4 and trt.config.profiling_verbosity == 2
    assert trt.config.flags == [] and trt.config.progress_monitor is not None
    assert any("Building engine" in s for s in said)

    engine = tmp_path / "model.engine"
    assert engine.read_bytes() == trt_build_fakes.PLAN  # a plain plan: no header bytes
    assert cache.read_bytes() == b"+tuned"
    m = read_manifest(engine)
    raw = manifest_path(engine).read_bytes()  # the dataclass writes back what the build wrote
    assert (json.dumps(m.to_dict(), indent=2) + "\n").encode() == raw
    assert list(json.loads(raw)["tensorrt"]) == [  # the keys, in order, before the dataclass
        "version",
        "module",
        "precision",
        "network_flags",
        "builder_flags",
        "version_compatible",
        "exclude_lean_runtime",
        "hardware_compatibility_level",
        "gpu",
        "profiles",
        "plugins",
        "plugin_layers",
        "nms_function_stripped",
        "dla_core",
        "builder_optimization_level",
        "workspace_bytes",
        "timing_cache",
    ]
    t = m.tensorrt
    assert t.version == "10.3.0.30" and t.precision == "strongly-typed"
    assert t.network_flags == ["STRONGLY_TYPED"]
    assert t.nms_function_stripped and t.plugin_layers == 1 and t.gpu["compute_capability"] == "8.7"
    assert t.profiles == [
        [{"name": "images", "min": [1, 3, 8, 8], "opt": [2, 3, 8, 8], "max": [4, 3, 8, 8]}]
    ]
    (p,) = t.plugins
    assert p.file == opdef.PLUGIN_LIBRARY and p.sha256 == sha256_file(lib) and not p.serialized
    creators = p.to_dict()["creators"]
    assert creators == [{"name": "EdgeDetNMS", "version": "1", "namespace": "edgedet"}]
    assert m.input.shape == (-1, 3, 8, 8) and m.precision == {
        "mode": "fp16",
        "engine": "strongly-typed",
    }
    assert (
        m.source["sha256"] == sha256_file(onnx_path) and m.source["upstream"]["weights"] == "w.pt"
    )
    assert m.tools["tensorrt"] == "10.3.0.30" and m.artifact["sha256"] == sha256_file(engine)
    assert result.notes and "removed the EdgeDetNMS local function" in result.notes[-1]


def test_trt_11_keeps_function_and_parses_the_file(use, tmp_path):
    trt = use("11.4.0.106")
    lib = trt_fakes.fake_plugin_library(tmp_path / opdef.PLUGIN_LIBRARY)
    build_engine(
        nms_onnx(tmp_path),
        tmp_path / "m.engine",
        BuildOptions(plugins=[str(lib)], version_compatible=True),
    )
    assert ("create_network", 0) in trt.calls  # strongly typed is implicit in 11.x
    assert ("parse_from_file", str(tmp_path / "model.onnx")) in trt.calls
    assert trt.config.flags == ["VERSION_COMPATIBLE"]
    assert trt.config.plugins_to_serialize == [str(lib.resolve())]
    t = read_manifest(tmp_path / "m.engine").tensorrt
    assert not t.nms_function_stripped and t.version_compatible and t.plugins[0].serialized


def test_no_plugin_keeps_the_standard_op_body(use, tmp_path):
    trt = use("10.3.0.30", plugin_layers=0)
    r = build_engine(nms_onnx(tmp_path), tmp_path / "m.engine", BuildOptions())
    assert any(c[0] == "parse_from_file" for c in trt.calls)
    assert any("standard-op local function" in n for n in r.notes) and any(
        "batch 1 only" in n for n in r.notes
    )


def test_legacy_fp16_on_10x_sets_weak_typing(use, tmp_path):
    trt = use("10.3.0.30")
    build_engine(
        nms_onnx(tmp_path, dynamic=False), tmp_path / "m.engine", BuildOptions(legacy="fp16")
    )
    assert (
        ("create_network", 0) in trt.calls
        and trt.config.flags == ["FP16"]
        and trt.config.profiles == []
    )


def test_legacy_refused_on_11_before_parsing(use, tmp_path):
    trt = use("11.0.0.114")
    with pytest.raises(InputError, match="TensorRT 11 removed"):
        build_engine(nms_onnx(tmp_path), tmp_path / "m.engine", BuildOptions(legacy="int8"))
    assert trt.calls == [] and not (tmp_path / "m.engine").exists()


def test_mismatching_timing_cache_starts_fresh(use, tmp_path):
    trt = use()
    cache = tmp_path / "t.cache"
    cache.write_bytes(b"from-another-gpu")
    said = []
    build_engine(
        nms_onnx(tmp_path),
        tmp_path / "m.engine",
        BuildOptions(timing_cache=str(cache)),
        say=said.append,
    )
    assert [c for c in trt.calls if c[0] == "set_timing_cache"] == [
        ("set_timing_cache", b"from-another-gpu", False),
        ("set_timing_cache", b"", False),
    ]
    assert any("another GPU" in s for s in said) and cache.read_bytes() == b"+tuned"


def test_timing_cache_from_another_release_starts_fresh(use, tmp_path):
    """create_timing_cache returns None for a blob this TensorRT cannot read: no
    set_timing_cache(None)."""
    trt = use()
    cache = tmp_path / "t.cache"
    cache.write_bytes(b"from-another-release")
    said = []
    build_engine(
        nms_onnx(tmp_path),
        tmp_path / "m.engine",
        BuildOptions(timing_cache=str(cache)),
        say=said.append,
    )
    assert [c for c in trt.calls if c[0] == "set_timing_cache"] == [
        ("set_timing_cache", b"", False)
    ]
    assert sum("cannot be read" in s for s in said) == 1 and cache.read_bytes() == b"+tuned"


@pytest.mark.parametrize("level", ["ampere_plus", "same_cc"])
def test_hardware_compat_needs_a_plugin_with_code_for_other_gpus(use, tmp_path, level):
    """--hardware-compat: a plugin with machine code for one GPU (-arch=native) is refused with the
    fix; a --arch portable plugin passes, and its architectures go into the manifest."""
    import json

    use("10.12.0.36")
    lib = trt_fakes.fake_plugin_library(tmp_path / "libedgedet_nms_plugin.so")
    sidecar = tmp_path / "libedgedet_nms_plugin.so.json"
    sidecar.write_text(json.dumps({"architectures": {"sass": ["sm_90"], "ptx": []}}))
    opts = BuildOptions(hardware_compatibility=level, plugins=[str(lib)])
    with pytest.raises(
        InputError,
        match=r"plugin libedgedet_nms_plugin.so holds GPU code for sm_90 only.*--arch portable",
    ):
        build_engine(nms_onnx(tmp_path), tmp_path / "m.engine", opts)
    portable = {"sass": ["sm_80", "sm_86", "sm_87", "sm_89", "sm_90"], "ptx": ["compute_80"]}
    sidecar.write_text(json.dumps({"architectures": portable}))
    result = build_engine(nms_onnx(tmp_path), tmp_path / "m.engine", opts)
    assert result.manifest.tensorrt.plugins[0].architectures == portable
    sidecar.unlink()  # unknown code: built, with a note saying so
    notes = build_engine(nms_onnx(tmp_path), tmp_path / "m.engine", opts).notes
    assert any("not recorded" in n and "--arch portable" in n for n in notes)


def test_parser_errors_name_node_and_operator(use, tmp_path):
    err = trt_build_fakes.FakeParserError(
        3,
        "nms0",
        opdef.OP_TYPE,
        "Plugin not found, are the plugin name, version, and namespace correct?",
    )
    use("10.3.0.30", parse_errors=[err])
    with pytest.raises(ExportError) as e:
        build_engine(nms_onnx(tmp_path), tmp_path / "m.engine", BuildOptions())
    msg = str(e.value)
    assert "node 'nms0' (EdgeDetNMS): Plugin not found" in msg and "[UNSUPPORTED_NODE]" in msg
    assert "--plugin libedgedet_nms_plugin.so" in msg and "\n" not in msg
    assert not (tmp_path / "m.engine").exists()


def test_parser_error_without_node_name():
    parser = trt_build_fakes.make_module().OnnxParser(None, None)
    parser.errors = [trt_build_fakes.FakeParserError(7, "", "", "bad graph", "INVALID_GRAPH")]
    assert parser_errors(parser) == ["node '#7' (?): bad graph [INVALID_GRAPH]"]


def test_failed_build_quotes_the_log_and_writes_nothing(use, tmp_path):
    use(build_fails=True)
    with pytest.raises(
        ExportError, match="failed to build the engine: Error Code 4: Internal Error"
    ):
        build_engine(
            nms_onnx(tmp_path),
            tmp_path / "m.engine",
            BuildOptions(timing_cache=str(tmp_path / "t.cache")),
        )
    assert not (tmp_path / "m.engine").exists() and not (tmp_path / "t.cache").exists()


def test_dla_core_checked_against_the_device(use, tmp_path):
    use("10.3.0.30", num_dla=2)
    with pytest.raises(InputError, match="--dla 2: this device has 2 DLA cores"):
        build_engine(
            nms_onnx(tmp_path, dynamic=False),
            tmp_path / "m.engine",
            BuildOptions(dla_core=2, legacy="fp16"),
        )


def test_without_tensorrt_the_error_says_how_to_get_it(tmp_path, monkeypatch):
    """Real import on this machine: no full TensorRT here (lean bindings or nothing)."""
    from edgedet.doctor import tensorrt_info

    if tensorrt_info()["builder"]:
        pytest.skip("full TensorRT is installed here")
    with pytest.raises(DependencyError, match="TensorRT.*pip install"):
        build_engine(nms_onnx(tmp_path), tmp_path / "m.engine", BuildOptions())


def test_build_without_onnx_asks_for_the_build_extra_not_torch(tmp_path, monkeypatch):
    """On a device, `edgedet build` needs onnx (edgedet[build]), never the torch-pulling export
    extra."""
    import sys
    import tomllib

    from click.testing import CliRunner

    from edgedet.cli.main import cli

    extras = tomllib.loads((Path(__file__).parents[3] / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert any(r.startswith("onnx") for r in extras["build"]) and not any(
        "torch" in r for r in extras["build"]
    )
    model = tmp_path / "m.onnx"
    model.write_bytes(b"x")
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx -> ImportError
    r = CliRunner().invoke(cli, ["build", str(model), "-o", str(tmp_path / "m.engine")])
    assert r.exit_code == DependencyError.exit_code
    assert "pip install 'edgedet[build]'" in r.output and "export" not in r.output, r.output


def test_doctor_names_the_build_extra_when_onnx_is_missing(monkeypatch):
    from edgedet import doctor

    # a Jetson with edgedet[ort] only
    report = {
        "can": {"export (torch -> ONNX)": False},
        "onnxruntime": {"version": "1.20"},
        "gpus": [{"name": "Orin"}],
        "tensorrt": {"version": "10.3.0", "builder": True, "error": None},
        "nms_plugin": {"library": "x.so"},
        "packages": {"onnx": None, "cuda-python": "12.6"},
    }
    tips = doctor.advice(report)
    assert any("pip install 'edgedet[ort,build]'" in t and "no torch" in t for t in tips)
