"""Every TensorRT Python API name edgedet calls, in one list per tier, as dotted names on the
module.

    RUNTIME           the runtime backend (edgedet/backends/tensorrt.py) and edgedet/trt/*
    RUNTIME_OPTIONAL  used by the runtime when present (the lean bindings leave them unbound)
    BUILDER           the engine builder (edgedet/onnx/engine/*, `edgedet build`), full TensorRT
    only

tests/edgedet/trt/test_trt_api.py resolves RUNTIME on the real lean 11.4 bindings installed on the
dev machine (the same names exist in 10.3's, python/src/infer/pyCore.cpp at tag v10.3.0) and
BUILDER on full TensorRT where one is installed. No machine of this project has full TensorRT (the
lean bindings have no Builder): the BUILDER names follow the Python API of 10.3 and 11.x (python/src
at tags v10.3.0 and v11.0 of NVIDIA/TensorRT).
"""

RUNTIME = (
    "__version__",
    "ILogger",
    "ILogger.Severity",
    "ILogger.Severity.ERROR",
    "ILogger.Severity.WARNING",
    "Runtime",
    "Runtime.deserialize_cuda_engine",
    "Runtime.engine_host_code_allowed",
    "Runtime.DLA_core",
    "Runtime.num_DLA_cores",
    "ICudaEngine.num_io_tensors",
    "ICudaEngine.get_tensor_name",
    "ICudaEngine.get_tensor_mode",
    "ICudaEngine.get_tensor_dtype",
    "ICudaEngine.get_tensor_shape",
    "ICudaEngine.get_tensor_profile_shape",
    "ICudaEngine.num_optimization_profiles",
    "ICudaEngine.create_execution_context",
    "ICudaEngine.device_memory_size_v2",
    "ICudaEngine.num_layers",
    "ICudaEngine.name",
    "ICudaEngine.create_engine_inspector",
    "ICudaEngine.profiling_verbosity",
    "IExecutionContext.set_input_shape",
    "IExecutionContext.get_tensor_shape",
    "IExecutionContext.set_tensor_address",
    "IExecutionContext.execute_async_v3",
    "TensorIOMode.INPUT",
    "TensorIOMode.OUTPUT",
    "DataType.FLOAT",
    "DataType.HALF",
    "DataType.INT8",
    "DataType.INT32",
    "DataType.INT64",
    "DataType.UINT8",
    "DataType.BOOL",
    "LayerInformationFormat.JSON",
    "ProfilingVerbosity.DETAILED",
    "get_plugin_registry",
    "IPluginRegistry.load_library",
    "IPluginRegistry.get_creator",
    "IPluginRegistry.all_creators",
)
# The lean bindings do not bind IEngineInspector (it sits under EXPORT_ALL_BINDINGS in pyCore.cpp),
# so `edgedet inspect` falls back to I/O + manifest there.
RUNTIME_OPTIONAL = ("EngineInspector", "EngineInspector.get_engine_information")
BUILDER = (
    "Builder",
    "Builder.create_network",
    "Builder.create_builder_config",
    "Builder.create_optimization_profile",
    "Builder.build_serialized_network",
    "Builder.num_DLA_cores",
    "NetworkDefinitionCreationFlag",
    "INetworkDefinition.num_layers",
    "INetworkDefinition.get_layer",
    "ILayer.type",
    "LayerType.PLUGIN_V2",
    "LayerType.PLUGIN_V3",
    "OnnxParser",
    "OnnxParser.parse",
    "OnnxParser.parse_from_file",
    "OnnxParser.num_errors",
    "OnnxParser.get_error",
    "OnnxParser.get_used_vc_plugin_libraries",
    "ParserError.code",
    "ParserError.desc",
    "ParserError.node",
    "ParserError.node_name",
    "ParserError.node_operator",
    "IBuilderConfig.set_memory_pool_limit",
    "MemoryPoolType.WORKSPACE",
    "IBuilderConfig.builder_optimization_level",
    "IBuilderConfig.profiling_verbosity",
    "ProfilingVerbosity.DETAILED",
    "IBuilderConfig.progress_monitor",
    "IProgressMonitor",
    "IBuilderConfig.set_flag",
    "BuilderFlag",
    "IBuilderConfig.hardware_compatibility_level",
    "HardwareCompatibilityLevel",
    "IBuilderConfig.plugins_to_serialize",
    "IBuilderConfig.default_device_type",
    "IBuilderConfig.DLA_core",
    "DeviceType.DLA",
    "IBuilderConfig.add_optimization_profile",
    "IOptimizationProfile.set_shape",
    "IBuilderConfig.create_timing_cache",
    "IBuilderConfig.set_timing_cache",
    "IBuilderConfig.get_timing_cache",
    "ITimingCache.serialize",
)
