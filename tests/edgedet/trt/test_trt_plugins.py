"""Plugin discovery (search order, hashes) and loading errors; loading uses the real lean registry
where noted."""

import os

import pytest

from edgedet.errors import CompatibilityError, InputError
from edgedet.fileio import sha256_file
from edgedet.trt import plugins
from edgedet.trt.plugins import Creator, PluginRecord
from edgedet.trt.version import TRTVersion

LIB = "libedgedet_nms_plugin.so"


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    monkeypatch.setenv("EDGEDET_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(plugins.ENV_VAR, raising=False)
    monkeypatch.setattr(plugins, "_LOADED", {})


def _lib(path, content=b"plugin v1"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def test_search_order(tmp_path, monkeypatch):
    rec = PluginRecord(LIB, path=str(tmp_path / "build" / LIB))
    monkeypatch.setenv(
        plugins.ENV_VAR, os.pathsep.join([str(tmp_path / "env1"), str(tmp_path / "env2" / "x.so")])
    )
    locs = plugins.search_locations(
        rec, tmp_path / "engines", [tmp_path / "given"], TRTVersion.parse("10.3.0.30")
    )
    assert locs == [
        tmp_path / "given" / LIB,
        tmp_path / "env1" / LIB,
        tmp_path / "env2" / "x.so",
        tmp_path / "engines" / LIB,
        tmp_path / "build" / LIB,
        tmp_path / "cache" / "plugins" / "10.3" / LIB,
        tmp_path / "cache" / "plugins" / LIB,
    ]


def test_cache_dir_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv("EDGEDET_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert plugins.cache_dir() == tmp_path / "xdg" / "edgedet"


def test_resolve_prefers_the_file_with_the_recorded_hash(tmp_path):
    wrong = _lib(tmp_path / "engines" / LIB, b"other build")
    right = _lib(tmp_path / "cache" / "plugins" / LIB)
    rec = PluginRecord(LIB, sha256=sha256_file(right))
    r = plugins.resolve(rec, tmp_path / "engines")
    assert r.path == right and r.hash_matches and plugins.problems(r) == []
    right.unlink()
    r = plugins.resolve(rec, tmp_path / "engines")
    assert r.path == wrong and not r.hash_matches
    (msg,) = plugins.problems(r)
    assert "different build" in msg and str(wrong) in msg
    assert plugins.problems(r, check_hash=False) == []


def test_missing_library_says_where_it_looked_and_how_to_get_it(tmp_path):
    rec = PluginRecord(LIB, sha256="00" * 32, creators=[Creator("EdgeDetNMS", "1", "edgedet")])
    (msg,) = plugins.problems(plugins.resolve(rec, tmp_path))
    assert f"plugin library {LIB}" in msg and "EdgeDetNMS v1 (namespace 'edgedet')" in msg
    assert str(tmp_path / LIB) in msg and "edgedet plugin build" in msg and plugins.ENV_VAR in msg


def test_embedded_plugin_needs_no_file(tmp_path):
    rec = PluginRecord(LIB, sha256="00" * 32, serialized=True)
    assert plugins.problems(plugins.resolve(rec, tmp_path)) == []


def test_record_roundtrip():
    rec = PluginRecord(LIB, "ab", "/x/" + LIB, [Creator("EdgeDetNMS", "1", "edgedet")], True)
    assert PluginRecord.from_dict(rec.to_dict()) == rec


def test_load_missing_file_is_input_error(tmp_path):
    with pytest.raises(InputError, match="does not exist.*edgedet plugin build"):
        plugins.load_library(object(), tmp_path / LIB)


def _real_trt_module():
    from edgedet.trt.loader import import_tensorrt

    try:
        return import_tensorrt().module
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"no TensorRT bindings: {exc}")


def test_real_registry_refuses_a_non_library(tmp_path):
    """Real TensorRT registry: load_library returns None for a non-ELF file (no GPU needed); the
    ctypes fallback then fails, and the error names the file and the fix."""
    trt = _real_trt_module()
    bogus = _lib(tmp_path / LIB, b"not an ELF file")
    with pytest.raises(
        CompatibilityError, match=f"cannot load plugin library .*{LIB}.*edgedet plugin build"
    ):
        plugins.load_library(trt, bogus)


def test_real_registry_lists_creators_and_misses_ours():
    trt = _real_trt_module()
    creators = plugins.registered_creators(trt)
    assert all(isinstance(c, Creator) for c in creators)
    want = Creator("EdgeDetNMS", "1", "edgedet")
    assert want not in creators and plugins.missing_creators(trt, [want]) == [want]
