"""The ONNX/TensorRT tier: everything that edits, quantises or compiles an ONNX graph.

Needs ``onnx`` (extra ``edgedet[build]``), ONNX Runtime for calibration and checks (``[ort]``) and,
for engines, TensorRT (``[trt]``) - never PyTorch, and never the torch tier in ``exporters/``
(tests/test_tiers.py reads the imports). The runtime (``edgedet`` outside this package) never
imports it; the CLI does, inside the commands that need it.

    graph.py      read-only views of a graph (producers, consumers, reachability)
    builder.py    NodeBuilder, the one ONNX node builder (inline nodes or a FunctionProto body)
    tools.py      load / check / simplify an ONNX file, its opset and I/O specs
    nms/          attach NMS to raw outputs (edgedet, graph, efficient, top-k implementations)
    byo/          bring your own ONNX: inspect a third-party model, add NMS (`edgedet attach-nms`)
    quantize/     FP16 and INT8 Q/DQ, sensitivity and budget, check-qdq
    engine/       TensorRT engine builder (`edgedet build`)
    raw_tap.py    run a contract model up to its raw boxes/scores (compare, precision benchmarks)
"""
