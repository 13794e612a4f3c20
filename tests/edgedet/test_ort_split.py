"""EdgeDetNMS on ONNX Runtime through the split graph (edgedet/backends/ort_split.py): the host NMS
between ORT slices gives the same bits as ONNX Runtime running the node's function body, for one NMS
at the end, run-time thresholds, and a two-stage (R-CNN-shaped) model whose second stage reads
first-stage tensors."""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
import tiny_models  # noqa: E402
from onnx import TensorProto, numpy_helper  # noqa: E402
from two_stage import K2, SIZE, two_stage_model  # noqa: E402

from edgedet import contract  # noqa: E402
from edgedet.backends.onnxruntime import OnnxRuntimeBackend  # noqa: E402
from edgedet.backends.ort_split import HostNMS, Slice  # noqa: E402
from edgedet.errors import InputError  # noqa: E402
from edgedet.nms import NMSParams  # noqa: E402
from edgedet.onnx.nms import attach_nms  # noqa: E402
from edgedet.onnx.nms.edgedet_op import make_node  # noqa: E402


def run_both(path, feed):
    """Outputs of the plain ORT path (function body) and of the split path, plus the split
    backend."""
    with OnnxRuntimeBackend(path, edgedet_nms="function") as plain:
        want = plain.infer(feed)
    split = OnnxRuntimeBackend(path, edgedet_nms="host")
    return want, split.infer(feed), split


def assert_same_bits(got, want):
    assert set(got) == set(want)
    for name in want:
        assert got[name].dtype == want[name].dtype and got[name].shape == want[name].shape, name
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_two_stage_split_equals_function_body(tmp_path, seed):
    path = tmp_path / "two_stage.onnx"
    onnx.save(two_stage_model(), path)
    images = np.random.default_rng(seed).uniform(0.2, 1.0, (1, 3, SIZE, SIZE)).astype(np.float32)
    want, got, split = run_both(path, {"images": images})
    assert_same_bits(got, want)
    # real detections, and the final NMS suppressed some
    assert 0 < int(want["num_dets"][0, 0]) < K2
    steps = split.split.steps
    assert [type(s) for s in steps] == [Slice, HostNMS, Slice, HostNMS]
    assert "m" in steps[2].inputs  # stage 2 reads a first-stage tensor besides the proposals
    assert split.describe()["edgedet_nms"].startswith("host (2 EdgeDetNMS")
    store = {"images": images}
    steps[0].run(store), steps[1].run(store)
    assert int(store["rpn/num_dets"][0, 0]) > 0


def test_run_time_thresholds_reach_the_host_nms(tmp_path):
    params = NMSParams(score_threshold=0.3, iou_threshold=0.5, max_output_boxes=8, top_k=0)
    model = attach_nms(tiny_models.raw_model(), params, "edgedet", runtime_thresholds=True)
    path = tmp_path / "thr.onnx"
    onnx.save(model, path)
    images = np.full((1, 3, 64, 64), 0.5, np.float32)
    counts = []
    for score, iou in ((0.3, 0.5), (0.05, 0.5), (0.05, 0.95)):
        feed = {
            "images": images,
            contract.SCORE_THRESHOLD_INPUT: np.array([score], np.float32),
            contract.IOU_THRESHOLD_INPUT: np.array([iou], np.float32),
        }
        want, got, _ = run_both(path, feed)
        assert_same_bits(got, want)
        counts.append(int(got["num_dets"][0, 0]))
    assert counts[0] < counts[1] < counts[2]  # the thresholds fed at run time change the result


def test_models_without_edgedet_nms_and_bad_option(tmp_path, tiny_nms):
    with OnnxRuntimeBackend(tiny_nms, edgedet_nms="host") as backend:
        assert backend.split is None and backend.session is not None  # nothing to split
    with pytest.raises(InputError, match="edgedet_nms"):
        OnnxRuntimeBackend(tiny_nms, edgedet_nms="fast")


def test_auto_splits_on_cpu(tmp_path):
    path = tmp_path / "two_stage.onnx"
    onnx.save(two_stage_model(), path)
    with OnnxRuntimeBackend(path, providers=["cpu"]) as backend:
        assert backend.split is not None and backend.split.nms_steps == 2
        assert [s.name for s in backend.inputs] == ["images"] and backend.outputs[1].shape == (
            1,
            K2,
            4,
        )


def test_wire_reader_agrees_with_onnx(tmp_path):
    """The protobuf wire reader (no onnx import at run time) reads what the onnx package wrote."""
    from edgedet.backends import onnx_wire
    from edgedet.backends.ort_split import nms_params
    from edgedet.onnx.nms.edgedet_op import nms_nodes, params_from_node

    model = two_stage_model()
    params = NMSParams(
        score_threshold=-0.5,
        iou_threshold=0.3,
        max_output_boxes=7,
        top_k=5000,
        background_class=-1,
        score_activation=True,
        class_agnostic=True,
        box_coding=1,
        box_scale=(10, 10, 5, 5),
    )
    model.graph.node[5].CopyFrom(
        make_node(
            ["boxes1", "scores1"], [f"rpn/{o}" for o in contract.NMS_OUTPUTS], params, "rpn_nms"
        )
    )
    parsed = onnx_wire.parse_model(model.SerializeToString())
    assert [n.op_type for n in parsed.graph.nodes] == [n.op_type for n in model.graph.node]
    assert [n.outputs for n in parsed.graph.nodes] == [list(n.output) for n in model.graph.node]
    wire_nms = [n for n in parsed.graph.nodes if n.op_type == "EdgeDetNMS"]
    assert [nms_params(n) for n in wire_nms] == [params_from_node(n) for n in nms_nodes(model)]
    np.testing.assert_array_equal(
        onnx_wire.tensor_value(parsed.graph.initializers["scores1_c"]),
        numpy_helper.to_array(model.graph.initializer[3]),
    )
    elem, dims = onnx_wire.value_info_type(dict(parsed.graph.outputs)["det_boxes"])
    assert (elem, dims) == (TensorProto.FLOAT, [1, K2, 4])
    # re-serialised whole, it is the same model to onnx
    g = parsed.graph
    again = onnx.load_from_string(
        onnx_wire.serialize(
            parsed,
            g.name,
            g.nodes,
            list(g.initializers.values()),
            [raw for _, raw in g.inputs],
            [raw for _, raw in g.outputs],
            keep_function=lambda d, n: True,
        )
    )
    assert again.graph == model.graph and list(again.functions) == list(model.functions)
