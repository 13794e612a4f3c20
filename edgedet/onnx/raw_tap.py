"""Read a detector's raw head tensors (``boxes``, ``scores``) even when NMS sits in the graph.

For compare: element-wise statistics are only meaningful before NMS, whose discrete
choices amplify tiny differences. An ONNX artifact is re-opened with those intermediate
tensors promoted to graph outputs; the PyTorch model returns them directly.
"""

from __future__ import annotations

import numpy as np

from edgedet import contract

RAW = (contract.RAW_BOXES, contract.RAW_SCORES)


def onnx_raw_session(path):
    """An ORT session over ``path`` whose outputs are the raw tensors present in the graph (or
    None)."""
    import onnx
    import onnxruntime as ort

    from edgedet.onnx.tools import load_onnx

    model = load_onnx(path)
    produced = {o for n in model.graph.node for o in n.output}
    names = [t for t in RAW if t in produced]
    if not names:
        return None, []
    outputs = {o.name for o in model.graph.output}
    for name in names:
        if name not in outputs:
            model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess, names


def raw_tap(detector, path=None):
    """A function image(RGB) -> {name: tensor} of raw outputs for ``detector``, or None if
    unavailable."""
    if detector.backend.name == "torch":
        return lambda img: _run(detector, img, lambda x: detector.infer(x))
    if path is None or str(path).endswith((".engine", ".plan", ".trt")):
        return None
    sess, names = onnx_raw_session(path)
    if sess is None:
        return None
    return lambda img: _run(
        detector, img, lambda x: dict(zip(names, sess.run(names, {detector.input.name: x})))
    )


def _run(detector, img: np.ndarray, fn) -> dict[str, np.ndarray]:
    x, _, _ = detector.preprocess([img])
    out = fn(x)
    return {k: v[:1] for k, v in out.items() if k in RAW}
