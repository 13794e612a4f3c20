"""A stand-in for full TensorRT's builder API, recording what edgedet/onnx/engine/build.py asks of
it.

It models documented behaviour only (NVIDIA/TensorRT python/src at v10.3.0 / v11.0, and the
Python API docs): enum members looked up by name (11.0 dropped EXPLICIT_BATCH and the
weak-typing BuilderFlags, so they are absent from the 11.x stand-in); ``OnnxParser.parse``
/ ``parse_from_file`` return bool and expose ``num_errors`` / ``get_error(i)`` with
``code() desc() node() node_name() node_operator()``; ``build_serialized_network`` returns a
buffer or None; ``create_timing_cache(bytes)`` (None for an unreadable blob) +
``set_timing_cache(cache, ignore_mismatch)``
(False on a mismatching cache) + ``ITimingCache.serialize()``; the progress monitor's
phase_start / step_complete / phase_finish are called during the build. It builds nothing:
the "plan" is fixed bytes.
"""

from __future__ import annotations

from enum import IntEnum
from types import SimpleNamespace

import trt_fakes

PLAN = b"\x01FAKE-SERIALIZED-PLAN\x00" * 4


class FakeParserError:
    def __init__(self, node, name, op, desc, code="UNSUPPORTED_NODE"):
        self._v = (node, name, op, desc, code)

    def node(self):
        return self._v[0]

    def node_name(self):
        return self._v[1]

    def node_operator(self):
        return self._v[2]

    def desc(self):
        return self._v[3]

    def code(self):
        return self._v[4]


def make_module(
    version="10.3.0.30", parse_errors=(), build_fails=False, plugin_layers=1, num_dla=0
):
    """A fake full-TensorRT module of ``version``; ``calls`` records every builder-side call."""
    major = int(version.split(".")[0])
    m = trt_fakes.FakeTRTModule(trt_fakes.FakeGPU())
    m.__version__ = version
    m.calls = []
    # 10.x Python enum: EXPLICIT_BATCH=0, STRONGLY_TYPED=1 (pyCore.cpp v10.3.0); 11.0 dropped
    # EXPLICIT_BATCH
    m.NetworkDefinitionCreationFlag = IntEnum(
        "NetworkDefinitionCreationFlag",
        {"EXPLICIT_BATCH": 0, "STRONGLY_TYPED": 1} if major == 10 else {"STRONGLY_TYPED": 0},
    )
    flags = ["GPU_FALLBACK", "VERSION_COMPATIBLE", "EXCLUDE_LEAN_RUNTIME"] + (
        ["FP16", "INT8"] if major == 10 else []
    )
    m.BuilderFlag = IntEnum("BuilderFlag", flags)
    m.MemoryPoolType = SimpleNamespace(WORKSPACE="WORKSPACE")
    m.HardwareCompatibilityLevel = SimpleNamespace(
        NONE="NONE", AMPERE_PLUS="AMPERE_PLUS", SAME_COMPUTE_CAPABILITY="SAME_CC"
    )
    m.DeviceType = SimpleNamespace(GPU="GPU", DLA="DLA")
    m.LayerType = SimpleNamespace(PLUGIN_V2="PLUGIN_V2", PLUGIN_V3="PLUGIN_V3", CONVOLUTION="CONV")

    class IProgressMonitor:
        def __init__(self):
            pass

    m.IProgressMonitor = IProgressMonitor

    class Cache:
        def __init__(self, data):
            self.data = bytes(data)

        def serialize(self):
            return self.data + b"+tuned"

    class Config:
        def __init__(self):
            self.flags, self.profiles, self.progress_monitor, self.cache = [], [], None, None
            self.plugins_to_serialize = []

        def set_memory_pool_limit(self, pool, size):
            m.calls.append(("set_memory_pool_limit", pool, size))

        def set_flag(self, flag):
            self.flags.append(flag.name)

        def add_optimization_profile(self, p):
            self.profiles.append(p.shapes)

        def create_timing_cache(self, data):
            # None for a blob this release cannot read (Polygraphy backend/trt/config.py handles
            # this case)
            return None if bytes(data) == b"from-another-release" else Cache(data)

        def set_timing_cache(self, cache, ignore_mismatch):
            m.calls.append(("set_timing_cache", cache.data, ignore_mismatch))
            if cache.data == b"from-another-gpu":
                return False
            self.cache = cache
            return True

        def get_timing_cache(self):
            return self.cache

    class Profile:
        def __init__(self):
            self.shapes = {}

        def set_shape(self, name, lo, opt, hi):
            self.shapes[name] = (tuple(lo), tuple(opt), tuple(hi))

    class Network:
        def __init__(self, flags):
            self.flags = flags
            kinds = ["CONV"] + ["PLUGIN_V3"] * plugin_layers
            self.layers = [SimpleNamespace(type=k) for k in kinds]

        @property
        def num_layers(self):
            return len(self.layers)

        def get_layer(self, i):
            return self.layers[i]

    class Builder:
        num_DLA_cores = num_dla

        def __init__(self, logger):
            self.logger = logger

        def create_network(self, flags):
            m.calls.append(("create_network", flags))
            return Network(flags)

        def create_builder_config(self):
            m.config = Config()
            return m.config

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network, config):
            mon = config.progress_monitor
            if mon is not None:
                mon.phase_start("Building engine", None, 2)
                mon.step_complete("Building engine", 0)
                mon.phase_finish("Building engine")
            if build_fails:
                self.logger.log(
                    trt_fakes.Severity.ERROR, "Error Code 4: Internal Error (out of memory)"
                )
                return None
            return bytearray(PLAN)

    class OnnxParser:
        def __init__(self, network, logger):
            self.errors = list(parse_errors)

        def parse(self, model, path=None):
            m.calls.append(("parse", bytes(model)[:4], path))
            return not self.errors

        def parse_from_file(self, path):
            m.calls.append(("parse_from_file", path))
            return not self.errors

        @property
        def num_errors(self):
            return len(self.errors)

        def get_error(self, i):
            return self.errors[i]

        def get_used_vc_plugin_libraries(self):
            return []

    m.Builder, m.OnnxParser = Builder, OnnxParser
    return m
