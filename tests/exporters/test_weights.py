"""--weights: state_dicts load strictly; everything else is refused with a message naming the
problem."""

import pytest

torch = pytest.importorskip("torch")

from edgedet.errors import InputError  # noqa: E402
from exporters.weights import apply_state_dict, load_state_dict, weights_record  # noqa: E402


def model():
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))


def test_state_dict_and_checkpoint_wrappers_load(tmp_path):
    m = model()
    torch.save(m.state_dict(), tmp_path / "a.pt")
    torch.save({"model": m.state_dict(), "epoch": 3}, tmp_path / "b.pt")
    for name in ("a.pt", "b.pt"):
        state = load_state_dict(tmp_path / name)
        other = model()
        apply_state_dict(other, state, name)
        assert torch.equal(other[0].weight, m[0].weight)
    rec = weights_record(tmp_path / "a.pt")
    assert rec["random_init"] is False and len(rec["sha256"]) == 64
    assert weights_record(None) == {"weights": None, "random_init": True}


def test_mismatches_are_listed(tmp_path):
    state = model().state_dict()
    state.pop("0.bias")
    state["head.weight"] = torch.zeros(1)
    state["0.weight"] = torch.zeros(8, 3, 3, 3)
    with pytest.raises(InputError) as e:
        apply_state_dict(model(), state, "w.pt")
    msg = str(e.value)
    assert "missing 1: 0.bias" in msg and "unexpected 1: head.weight" in msg
    assert (
        "shape mismatch 1: 0.weight (8, 3, 3, 3) vs model (4, 3, 3, 3)" in msg
        and "--num-classes" in msg
    )


def test_full_pickled_models_and_garbage_are_refused(tmp_path):
    torch.save(model(), tmp_path / "full.pt")  # a whole pickled module: would run code on load
    with pytest.raises(InputError, match="state_dict"):
        load_state_dict(tmp_path / "full.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="cannot read weights"):
        load_state_dict(tmp_path / "junk.pt")
    torch.save({"lr": 0.1}, tmp_path / "opt.pt")
    with pytest.raises(InputError, match="not a state_dict"):
        load_state_dict(tmp_path / "opt.pt")
    with pytest.raises(InputError, match="does not exist"):
        load_state_dict(tmp_path / "nope.pt")
