"""EfficientDet (optional effdet package): anchors decoded inside the graph's NMS (fused decode)
give the
same detections as decoding in the graph and running host NMS."""

import importlib.util

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("effdet") is None,
    reason="optional effdet package not installed (pip install effdet) - run with it to test",
)


def test_fused_anchor_decode_equals_decode_in_graph(tmp_path):
    import torch
    from torch_fixtures import calibrate_logits, wake_up

    import edgedet
    from edgedet.eval.compare import ParityAccumulator
    from exporters.pipeline import ExportOptions, build_exportable, export

    size = 256
    paths = {}
    imgs = [
        np.random.default_rng(i).integers(0, 256, (size, size, 3), dtype=np.uint8) for i in range(2)
    ]
    x = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float() / 255
    for nms in ("none", "graph"):
        torch.manual_seed(0)
        opts = ExportOptions(
            model="tf_efficientdet_d0",
            imgsz=size,
            nms=nms,
            simplify=False,
            nms_overrides={"score_threshold": 0.5},
        )
        em = build_exportable(opts)
        wake_up(em.module, size)
        head = em.module.head if nms == "none" else em.module
        calibrate_logits(
            em.module, head.model.class_net.predict.conv_pw, lambda em=em: em.module(x), 2.5
        )
        res = export(opts, tmp_path / f"{nms}.onnx", model=em)
        paths[nms] = res.path
        assert res.manifest.output_kind == ("raw" if nms == "none" else "nms")
    acc = ParityAccumulator(0.99)
    with edgedet.load(paths["none"]) as decoded, edgedet.load(paths["graph"]) as fused:
        for img in imgs:
            acc.add(decoded(img), fused(img))
    r = acc.result()
    assert r["detections_a"] > 0 and r["matched_a"] == 1.0 and r["matched_b"] == 1.0, r
    assert r["score_delta"]["max"] < 1e-5
