"""The shipped weights: size, strict loading, errors a user can cause."""

import pytest

torch = pytest.importorskip("torch")

from edgedet.errors import InputError  # noqa: E402
from exporters import nano  # noqa: E402


def test_weights_file_is_small():
    assert nano.WEIGHTS_PATH.is_file()
    assert nano.WEIGHTS_PATH.stat().st_size <= 5 * 1024 * 1024


def test_weights_load_strictly():
    state = torch.load(nano.WEIGHTS_PATH, map_location="cpu", weights_only=True)
    model = nano.build_model(weights=None)
    assert set(state) == set(model.state_dict())
    loaded = nano.build_model()
    assert not loaded.training
    assert all(p.dtype == torch.float32 for p in loaded.parameters())


def test_mismatched_weights_name_the_keys(tmp_path):
    state = nano.build_model(weights=None).state_dict()
    state["extra.weight"] = state.pop("head.cls_out.0.bias")
    bad = tmp_path / "bad.pt"
    torch.save(state, bad)
    with pytest.raises(
        InputError, match=r"missing 1: head\.cls_out\.0\.bias.*unexpected 1: extra\.weight"
    ):
        nano.build_model(bad)


def test_missing_weights_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        nano.build_model(tmp_path / "nope.pt")


def test_reevaluate_updates_metrics_and_keeps_the_training_fields(tmp_path):
    import json
    import shutil

    from exporters.nano import train

    weights = tmp_path / "nano.pt"
    shutil.copy(nano.WEIGHTS_PATH, weights)
    record = {
        "command": "python -m exporters.nano.train",
        "timings_s": {"total": 1.0},
        "val_metrics": {"mAP": -1.0},
    }
    weights.with_suffix(".json").write_text(json.dumps(record))
    cfg = train.TrainConfig(out=weights, data_root=tmp_path / "data", val_size=3)
    train.reevaluate(cfg, log=lambda _: None)
    updated = json.loads(weights.with_suffix(".json").read_text())
    assert updated["command"] == record["command"] and updated["timings_s"] == record["timings_s"]
    for key in ("val_metrics", "val_metrics_coco_protocol"):
        assert 0.0 <= updated[key]["mAP"] <= 1.0 and 0.0 <= updated[key]["mAP50"] <= 1.0
    assert updated["eval_nms_coco_protocol"]["score_threshold"] == 0.001
    # a lower score threshold only adds candidates, so recall cannot fall
    assert updated["val_metrics_coco_protocol"]["AR100"] >= updated["val_metrics"]["AR100"] - 1e-9
