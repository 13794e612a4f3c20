"""--nms efficient: the EfficientNMS_TRT node, its types, what it refuses, and ONNX Runtime's
refusal.

TensorRT is not available here, so the node is checked against the plugin's documented interface
(TensorRT OSS plugin/efficientNMSPlugin/README.md); running it is left to the trt-marked tests.
"""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
import tiny_models
from onnx import TensorProto, helper

from edgedet import contract
from edgedet.errors import ExportError, ModelError
from edgedet.nms.params import NMSParams
from edgedet.onnx.nms import RawOutputs, efficient, raw_outputs


def attach(model, params=None, anchors=None, **kwargs):
    params = NMSParams() if params is None else params
    return efficient.attach_efficient(
        model, params, raw_outputs(model, "boxes", "scores", anchors), **kwargs
    )


def the_node(model):
    (node,) = [n for n in model.graph.node if n.op_type == efficient.OP_TYPE]
    return node


def attrs(node) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def fp16_raw_model(boxes_half=True, scores_half=True):
    """tiny raw model whose boxes / scores outputs are cast to float16."""
    m = tiny_models.raw_model(batch=None)
    for out, half in zip(m.graph.output, (boxes_half, scores_half)):
        if half:
            for n in m.graph.node:
                n.output[:] = [f"{o}_f32" if o == out.name else o for o in n.output]
            m.graph.node.append(
                helper.make_node("Cast", [f"{out.name}_f32"], [out.name], to=TensorProto.FLOAT16)
            )
            out.type.tensor_type.elem_type = TensorProto.FLOAT16
    return m


def test_node_attributes_inputs_and_contract_outputs():
    params = NMSParams(
        score_threshold=0.3,
        iou_threshold=0.5,
        max_output_boxes=7,
        background_class=2,
        score_activation=True,
        class_agnostic=True,
        box_coding=1,
    )
    model = attach(tiny_models.raw_model(batch=None), params)
    node = the_node(model)
    assert node.domain == efficient.OP_DOMAIN and list(node.input) == ["boxes", "scores"]
    a = attrs(node)
    assert a == {
        "score_threshold": pytest.approx(0.3),
        "iou_threshold": pytest.approx(0.5),
        "max_output_boxes": 7,
        "background_class": 2,
        "score_activation": 1,
        "class_agnostic": 1,
        "box_coding": 1,
        "plugin_version": b"1",
        "plugin_namespace": b"",
    }
    kinds = {x.name: x.type for x in node.attribute}
    assert kinds["score_threshold"] == kinds["iou_threshold"] == onnx.AttributeProto.FLOAT
    assert all(
        kinds[k] == onnx.AttributeProto.INT
        for k in (
            "max_output_boxes",
            "background_class",
            "score_activation",
            "class_agnostic",
            "box_coding",
        )
    )
    outputs = {o.name: o.type.tensor_type for o in model.graph.output}
    assert list(outputs) == list(contract.NMS_OUTPUTS)
    assert [outputs[n].elem_type for n in contract.NMS_OUTPUTS] == [
        TensorProto.INT32,
        TensorProto.FLOAT,
        TensorProto.FLOAT,
        TensorProto.INT32,
    ]
    dims = [
        [d.dim_value or d.dim_param for d in outputs[n].shape.dim] for n in contract.NMS_OUTPUTS
    ]
    assert dims == [["batch", 1], ["batch", 7, 4], ["batch", 7], ["batch", 7]]
    assert any(o.domain == efficient.OP_DOMAIN and o.version == 1 for o in model.opset_import)


def test_checker_passes_with_the_custom_domain():
    model = attach(tiny_models.raw_model(batch=None))
    # custom domain: no schema to check, shapes from value_info
    onnx.checker.check_model(model, full_check=True)


def test_background_class_outside_range_means_none():
    assert (
        attrs(the_node(attach(tiny_models.raw_model(), NMSParams(background_class=5))))[
            "background_class"
        ]
        == -1
    )


def test_anchors_become_a_third_input():
    anchors = np.arange(12, dtype=np.float32).reshape(3, 4)
    model = attach(tiny_models.raw_model(), NMSParams(box_coding=1), anchors=anchors)
    node = the_node(model)
    assert len(node.input) == 3
    init = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}[node.input[2]]
    assert init.shape == (1, 3, 4) and init.dtype == np.float32 and np.array_equal(init[0], anchors)
    onnx.checker.check_model(model)


def test_fp16_stays_fp16_into_the_plugin_and_contract_outputs_are_float32():
    model = attach(fp16_raw_model(), anchors=np.zeros((3, 4), np.float32))
    node = the_node(model)
    assert list(node.input[:2]) == ["boxes", "scores"]  # no cast in front
    init = {i.name: i for i in model.graph.initializer}[node.input[2]]
    # one type for all float inputs (supportsFormatCombination)
    assert init.data_type == TensorProto.FLOAT16
    info = {v.name: v.type.tensor_type.elem_type for v in model.graph.value_info}
    assert info[node.output[1]] == info[node.output[2]] == TensorProto.FLOAT16
    types = {o.name: o.type.tensor_type.elem_type for o in model.graph.output}
    assert types[contract.DET_BOXES] == types[contract.DET_SCORES] == TensorProto.FLOAT
    onnx.checker.check_model(model, full_check=True)


def test_mixed_types_are_cast_to_float32():
    model = attach(fp16_raw_model(boxes_half=True, scores_half=False))
    node = the_node(model)
    casts = {n.output[0]: n for n in model.graph.node if n.op_type == "Cast"}
    assert node.input[0] in casts and casts[node.input[0]].input[0] == "boxes"
    assert attrs(casts[node.input[0]])["to"] == TensorProto.FLOAT and node.input[1] == "scores"


def _raw(n, c, anchors=None):
    return RawOutputs(
        "boxes", "scores", n, c, "batch", False, TensorProto.FLOAT, TensorProto.FLOAT, anchors
    )


@pytest.mark.parametrize("top_k", [0, 4097, 6000])
def test_refuses_more_than_4096_candidates(top_k):
    with pytest.raises(ExportError, match="4096"):
        efficient.check_expressible(tiny_models.raw_model(), NMSParams(top_k=top_k), _raw(2000, 3))


def test_unlimited_top_k_is_fine_when_few_candidates_exist():
    # 4000 <= 4096
    efficient.check_expressible(tiny_models.raw_model(), NMSParams(top_k=0), _raw(1000, 4))


def test_refuses_box_scale_with_anchors():
    params = NMSParams(box_coding=1, box_scale=(10.0, 10.0, 5.0, 5.0))
    with pytest.raises(ExportError, match="box_scale"):
        efficient.check_expressible(
            tiny_models.raw_model(), params, _raw(3, 3, np.zeros((1, 3, 4), np.float32))
        )
    # no anchors: box_scale unused
    efficient.check_expressible(tiny_models.raw_model(), params, _raw(3, 3))


def test_refuses_run_time_thresholds():
    model = tiny_models.raw_model()
    with pytest.raises(ExportError, match="run time"):
        efficient.check_expressible(model, NMSParams(), _raw(3, 3), runtime_thresholds=True)
    model.graph.input.append(
        helper.make_tensor_value_info(contract.SCORE_THRESHOLD_INPUT, TensorProto.FLOAT, [1])
    )
    with pytest.raises(ExportError, match="--nms edgedet"):
        efficient.check_expressible(model, NMSParams(), _raw(3, 3))


def test_warns_that_top_k_below_the_cap_is_not_honoured():
    with pytest.warns(UserWarning, match="4096"):
        efficient.check_expressible(tiny_models.raw_model(), NMSParams(top_k=100), _raw(2000, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # N*C = 9
        efficient.check_expressible(tiny_models.raw_model(), NMSParams(top_k=1000), _raw(3, 3))


def test_onnxruntime_refuses_with_the_op_named(tmp_path):
    import edgedet

    path = tmp_path / "efficient.onnx"
    model = attach(tiny_models.raw_model(batch=None))
    onnx.save(model, path)
    assert efficient.tensorrt_only_ops(model) == ["TRT::EfficientNMS_TRT"]
    with pytest.raises(ModelError) as exc:
        edgedet.load(path)
    msg = str(exc.value)
    assert "EfficientNMS_TRT" in msg and "\n" not in msg
    assert "only TensorRT runs" in msg and "--nms edgedet" in msg
