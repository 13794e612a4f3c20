"""TensorRT helpers the runtime needs: version rules, compatibility checks, plugins, CUDA buffers.

Nothing here imports TensorRT or cuda-python at module level; both are imported by
:func:`edgedet.trt.loader.import_tensorrt` and :func:`edgedet.trt.cuda.import_cudart`
when an engine is actually opened. See docs/tensorrt.md for the design and for what has
and has not been executed.
"""
