"""Build TensorRT engines from edgedet ONNX files (host toolchain side; may import onnx).

``build_engine`` (edgedet/onnx/engine/build.py) is the library call behind `edgedet build`; the
pure decisions it makes - profile shapes, flags per TensorRT version, NMS local-function
stripping - live in profiles.py, flags.py and strip.py and are tested without TensorRT.
"""
