"""attach-nms on files made the way third-party tools make them (issue 14, failure classes 1-4,
6-8).

Each generated model (tests/helpers/third_party.py) reproduces one way a real export broke
attach-nms; each test converts it with no hand edits and checks the converted raw head against
the model's own post-processing on identical tensors.
"""

import warnings

import numpy as np
import onnx
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

import third_party as tp  # noqa: E402  (tests/helpers is on sys.path)

from edgedet.errors import InputError  # noqa: E402
from edgedet.nms.params import NMSParams  # noqa: E402
from edgedet.onnx.byo.attach import ByoSpec, attach_file, attach_third_party  # noqa: E402
from edgedet.onnx.tools import check_model, simplify  # noqa: E402

FACE = ByoSpec(
    boxes="boxes",
    scores="scores",
    normalized=True,
    background_class=0,
    input_scale=255,
    mean=(127.0,) * 3,
    std=(128.0,) * 3,
    resize="stretch",
)
CASES = {
    "ultralytics": (tp.ultralytics_like, ByoSpec(combined="output0", box_format="cxcywh"), 1e-4),
    "yolov5_fp16": (
        tp.yolov5_fp16,
        ByoSpec(combined="output0", box_format="cxcywh", objectness=True),
        0.1,
    ),
    "yolox_raw": (
        tp.yolox_raw,
        ByoSpec(combined="output", decode="yolox", input_scale=255, channel_order="BGR"),
        1e-4,
    ),
    "yolov6_raw": (tp.ltrb_raw, ByoSpec(combined="output", decode="ltrb"), 1e-4),
    "face_ssd": (tp.face_ssd, FACE, 1e-4),
}


def run_raw(model, x):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(["boxes", "scores"], {"images": x})


@pytest.mark.parametrize("case", list(CASES))
def test_third_party_head_matches_its_own_postprocessing(case):
    build, spec, atol = CASES[case]
    module, model = build()
    out, info = attach_third_party(model, spec, NMSParams(), implementation="none")
    onnx.checker.check_model(out, full_check=True)
    assert [i.name for i in out.graph.input] == ["images"]
    assert out.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    x = np.random.default_rng(1).random((1, 3, info["height"], info["width"]), dtype=np.float32)
    boxes, scores = run_raw(out, x)
    with torch.no_grad():
        want_boxes, want_scores = module.reference(torch.from_numpy(x))
    assert boxes.dtype == scores.dtype == np.float32
    np.testing.assert_allclose(boxes, want_boxes.numpy(), atol=atol * 100)  # pixels
    np.testing.assert_allclose(scores, want_scores.numpy(), atol=atol)
    assert np.ptp(boxes) > 10 and np.ptp(scores) > 1e-3  # not constants
    assert info["probe"]["checked"]


@pytest.mark.parametrize("case", list(CASES))
def test_full_graph_passes_checker_and_onnxslim(case):
    """Classes 1-3: names colliding with the contract's made an SSA violation, and the cycle it
    formed sent onnxslim into 'maximum recursion depth exceeded'."""
    build, spec, _ = CASES[case]
    out, info = attach_third_party(
        build()[1], spec, NMSParams(score_threshold=0.05), implementation="edgedet"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # onnxslim failing only warns: make that a failure here
        out = simplify(out)
    check_model(out, case)
    assert {o.name for o in out.graph.output} == {
        "num_dets",
        "det_boxes",
        "det_scores",
        "det_classes",
    }


def test_contract_names_are_moved_off_the_model_not_the_users_outputs():
    _, model = tp.face_ssd()
    out, info = attach_third_party(model, FACE, NMSParams(), implementation="none")
    assert info["renamed"] == {"boxes": "byo_src_boxes", "scores": "byo_src_scores"}
    _, model = tp.ultralytics_like()
    assert attach_third_party(model, CASES["ultralytics"][1], NMSParams(), "none")[1][
        "renamed"
    ] == {"images": "byo_src_images"}


def test_old_exporter_shapes_fall_back_to_declared_then_a_run():
    """Class 3: opset 9, initialisers as inputs, unknown intermediate dims; also with the output
    shapes undeclared, where only running the model tells N and C."""
    _, model = tp.face_ssd()
    assert model.opset_import[0].version == 9 and len(model.graph.input) > 1
    inferred = onnx.shape_inference.infer_shapes(model)
    static = [
        v.type.tensor_type.HasField("shape")
        and all(d.dim_value for d in v.type.tensor_type.shape.dim)
        for v in inferred.graph.value_info
    ]
    assert not all(static)  # ONNX shape inference cannot tell the intermediate shapes
    _, info = attach_third_party(model, FACE, NMSParams(), implementation="edgedet")
    assert info["initializer_inputs_dropped"] > 0
    _, model = tp.face_ssd()
    for out in model.graph.output:
        for d in out.type.tensor_type.shape.dim[1:]:
            d.Clear()
            d.dim_param = "unk"
    out, _ = attach_third_party(model, FACE, NMSParams(), implementation="edgedet")
    dims = {o.name: [d.dim_value for d in o.type.tensor_type.shape.dim] for o in out.graph.output}
    assert dims["det_boxes"] == [1, 100, 4]


def test_fp16_model_keeps_fp16_inside_with_float32_io(tmp_path):
    _, model = tp.yolov5_fp16()
    src = tmp_path / "v5half.onnx"
    onnx.save(model, src)
    m = attach_file(src, tmp_path / "out.onnx", CASES["yolov5_fp16"][1], NMSParams())
    assert m.precision["mode"] == "fp16" and m.input.dtype == "float32"
    converted = onnx.load(tmp_path / "out.onnx")
    # weights stay FP16
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in converted.graph.initializer)


def test_background_column_is_dropped_and_ids_are_the_users(tmp_path):
    """Class 7: names may list the background or not; either way 'face' is class 0, category id
    1."""
    _, model = tp.face_ssd()
    src = tmp_path / "face.onnx"
    onnx.save(model, src)
    for names in (["background", "face"], ["face"]):
        m = attach_file(
            src,
            tmp_path / "out.onnx",
            ByoSpec(**{**FACE.__dict__, "class_names": names}),
            NMSParams(),
        )
        assert m.class_names == ["face"] and m.category_ids == [1] and m.nms.background_class == -1
    with pytest.raises(
        InputError, match="3 class names given, the model has 1 classes after dropping"
    ):
        attach_file(
            src,
            tmp_path / "out.onnx",
            ByoSpec(**{**FACE.__dict__, "class_names": ["a", "b", "c"]}),
            NMSParams(),
        )
    with pytest.raises(InputError, match="--background-class 5"):
        attach_third_party(
            tp.face_ssd()[1],
            ByoSpec(**{**FACE.__dict__, "background_class": 5}),
            NMSParams(),
            "none",
        )


@pytest.mark.parametrize(
    "build,spec,flag",
    [
        (
            tp.yolox_raw,
            ByoSpec(combined="output", box_format="cxcywh", objectness=True),
            "--decode yolox",
        ),
        (tp.face_ssd, ByoSpec(**{**FACE.__dict__, "normalized": False}), "--normalized"),
        (tp.logit_head, ByoSpec(boxes="bx", scores="logits"), "--score-activation"),
        (tp.ultralytics_like, ByoSpec(combined="output0"), "--box-format cxcywh"),
    ],
)
def test_what_attach_nms_does_not_understand_is_refused(build, spec, flag):
    """Class 6/8: a raw grid, normalised boxes, logits or centre-size boxes would run as garbage."""
    with pytest.raises(InputError, match=flag.replace("(", r"\(")):
        attach_third_party(build()[1], spec, NMSParams(), implementation="none")


def test_grid_decoder_refuses_wrong_strides():
    with pytest.raises(InputError, match="strides \\[8, 16\\] give 80 grid cells"):
        attach_third_party(
            tp.yolox_raw()[1],
            ByoSpec(combined="output", decode="yolox", strides=(8, 16)),
            NMSParams(),
            implementation="none",
        )


def test_ultralytics_class_names_come_from_the_metadata(tmp_path):
    _, model = tp.ultralytics_like()
    onnx.helper.set_model_props(model, {"names": "{0: 'person', 1: 'bicycle', 2: 'car'}"})
    onnx.save(model, tmp_path / "y.onnx")
    m = attach_file(
        tmp_path / "y.onnx", tmp_path / "out.onnx", CASES["ultralytics"][1], NMSParams()
    )
    assert m.class_names == ["person", "bicycle", "car"]


def test_non_square_imgsz_pins_height_and_width():
    module, model = tp.ultralytics_like(h=64, w=96)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    for d in dims[2:]:
        d.Clear()
        d.dim_param = "hw"
    _, info = attach_third_party(
        model,
        ByoSpec(combined="output0", box_format="cxcywh", imgsz=(64, 96)),
        NMSParams(),
        implementation="none",
    )
    assert (info["height"], info["width"]) == (64, 96)


def test_ssd_deltas_decode_against_priors_with_variances(tmp_path):
    """SSD heads exporting deltas: --decode ssd --anchors (cx, cy, w, h) priors, variances 0.1 /
    0.2."""
    module, model = tp.face_ssd_deltas()
    np.save(tmp_path / "priors.npy", module.priors())
    spec = ByoSpec(**{**FACE.__dict__, "decode": "ssd", "anchors": str(tmp_path / "priors.npy")})
    out, info = attach_third_party(model, spec, NMSParams(), implementation="none")
    x = np.random.default_rng(2).random((1, 3, 48, 64), dtype=np.float32)
    boxes, scores = run_raw(out, x)
    with torch.no_grad():
        want_boxes, want_scores = module.reference(torch.from_numpy(x))
    np.testing.assert_allclose(boxes, want_boxes.numpy(), atol=1e-3)
    np.testing.assert_allclose(scores, want_scores.numpy(), atol=1e-5)
    with pytest.raises(InputError, match="--anchors"):
        attach_third_party(
            tp.face_ssd_deltas()[1],
            ByoSpec(**{**FACE.__dict__, "decode": "ssd"}),
            NMSParams(),
            "none",
        )
    np.save(tmp_path / "short.npy", module.priors()[:10])
    with pytest.raises(InputError, match=r"shape \(10, 4\); the head has 60 candidates"):
        short = ByoSpec(**{**spec.__dict__, "anchors": str(tmp_path / "short.npy")})
        attach_third_party(tp.face_ssd_deltas()[1], short, NMSParams(), "none")
    # deltas read as boxes: refused, not garbage
    with pytest.raises(InputError, match="--decode ssd"):
        attach_third_party(tp.face_ssd_deltas()[1], FACE, NMSParams(), "none")
