"""attach-nms for third-party ONNX files: layouts, formats, old opsets, and refusals."""

import io

import numpy as np
import onnx
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from edgedet.errors import InputError  # noqa: E402
from edgedet.nms.params import NMSParams  # noqa: E402
from edgedet.onnx.byo.attach import ByoSpec, attach_third_party  # noqa: E402

N, C, S = 16, 3, 32


class ThirdParty(torch.nn.Module):
    """Emits (boxes xyxy px [1,N,4], logits [1,N,C]) in the layout a test asks for."""

    def __init__(self, layout):
        super().__init__()
        self.layout = layout
        self.conv = torch.nn.Conv2d(3, 4 + C + 1, 8, 8)

    def reference(self, x):
        f = self.conv(x * 255.0).flatten(2).transpose(1, 2)  # [1, N, 8]; wants 0..255 input
        xy = torch.sigmoid(f[..., :2]) * S
        wh = torch.sigmoid(f[..., 2:4]) * 8 + 1
        return torch.cat([xy - wh / 2, xy + wh / 2], -1), f[..., 4 : 4 + C], f[..., 7:8]

    def forward(self, x):
        x = x / 255.0
        boxes, logits, obj = self.reference(x)
        cxcywh = torch.cat(
            [(boxes[..., :2] + boxes[..., 2:]) / 2, boxes[..., 2:] - boxes[..., :2]], -1
        )
        if self.layout == "yolov8":  # [1, 4+C, N], cxcywh px, probs
            return torch.cat([cxcywh, torch.sigmoid(logits)], -1).transpose(1, 2)
        if self.layout == "yolov5":  # [1, N, 5+C], cxcywh px, obj + cls probs
            return torch.cat([cxcywh, torch.sigmoid(obj), torch.sigmoid(logits)], -1)
        return boxes[0] / S, logits[0]  # "split": [N,4] normalised xyxy, [N,C] logits


def export(layout, opset=17, dynamic_hw=False, keep_inits=False):
    torch.manual_seed(0)
    m = ThirdParty(layout).eval()
    buf = io.BytesIO()
    outs = ["out"] if layout != "split" else ["bx", "sc"]
    axes = {"inp": {2: "h", 3: "w"}} if dynamic_hw else None
    torch.onnx.export(
        m,
        (torch.rand(1, 3, S, S) * 255,),
        buf,
        dynamo=False,
        opset_version=opset,
        input_names=["inp"],
        output_names=outs,
        dynamic_axes=axes,
        keep_initializers_as_inputs=keep_inits,
    )
    return m, onnx.load_from_string(buf.getvalue())


def run(model, x):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(["boxes", "scores"], {"images": x})


@pytest.mark.parametrize(
    "layout,spec",
    [
        ("yolov8", ByoSpec(combined="out", box_format="cxcywh", input_scale=255)),
        ("yolov5", ByoSpec(combined="out", box_format="cxcywh", objectness=True, input_scale=255)),
        (
            "split",
            ByoSpec(
                boxes="bx",
                scores="sc",
                normalized=True,
                score_activation="sigmoid",
                input_scale=255,
            ),
        ),
    ],
)
def test_layouts_become_the_raw_contract(layout, spec):
    module, model = export(layout)
    out, info = attach_third_party(model, spec, NMSParams(), implementation="none")
    onnx.checker.check_model(out, full_check=True)
    x = np.random.default_rng(0).random((1, 3, S, S), dtype=np.float32)
    boxes, scores = run(out, x)
    with torch.no_grad():
        rb, rl, ro = module.reference(torch.from_numpy(x))
    want = torch.sigmoid(rl) * (torch.sigmoid(ro) if layout == "yolov5" else 1)
    np.testing.assert_allclose(boxes, rb.numpy(), atol=1e-3)
    np.testing.assert_allclose(scores, want.numpy(), atol=1e-5)
    assert info["classes"] == C


def test_old_opset_and_initializer_inputs_are_fixed():
    _, model = export("yolov8", opset=11, keep_inits=True)
    assert len(model.graph.input) > 1
    out, info = attach_third_party(
        model,
        ByoSpec(combined="out", box_format="cxcywh", input_scale=255),
        NMSParams(),
        implementation="none",
    )
    assert info["initializer_inputs_dropped"] > 0 and len(out.graph.input) == 1
    assert next(o.version for o in out.opset_import if o.domain in ("", "ai.onnx")) >= 13


def test_dynamic_input_size_needs_imgsz():
    _, model = export("yolov8", dynamic_hw=True)
    with pytest.raises(InputError, match="--imgsz"):
        attach_third_party(
            model, ByoSpec(combined="out", box_format="cxcywh"), NMSParams(), implementation="none"
        )


def test_non_detection_outputs_are_refused():
    _, model = export("split")
    with pytest.raises(InputError, match="no axis of size 4"):
        attach_third_party(
            model, ByoSpec(boxes="sc", scores="bx"), NMSParams(), implementation="none"
        )
    with pytest.raises(InputError, match="no output 'logits'"):
        attach_third_party(
            export("split")[1],
            ByoSpec(boxes="bx", scores="logits"),
            NMSParams(),
            implementation="none",
        )
    with pytest.raises(InputError, match="--combined"):
        attach_third_party(
            export("split")[1], ByoSpec(boxes="bx"), NMSParams(), implementation="none"
        )
