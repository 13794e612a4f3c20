"""Precision carried in the ONNX file: FP16 graphs and explicit Q/DQ INT8 (TensorRT 11.0 release
notes).

TensorRT 11 removed the precision flags and calibrators, so edgedet never asks the
builder for a precision: an FP16 ONNX builds to an FP16 engine and a Q/DQ ONNX to an
INT8 engine, strongly typed, on every TensorRT version from 10.3.
"""
