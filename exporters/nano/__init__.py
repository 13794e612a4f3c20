"""nano: edgedet's built-in anchor-free detector for the synthetic shapes dataset (320x320).

    from exporters import nano
    model = nano.build_model()            # shipped weights, eval mode
    boxes, scores = model(images)         # [B, 2100, 4] xyxy input px, [B, 2100, C] sigmoid

Training: ``python -m exporters.nano.train``; dataset: :mod:`exporters.nano.synthetic`;
details and measured mAP: docs/nano.md.
"""

from __future__ import annotations

from pathlib import Path

# Class index i has COCO category id i + 1 in the synthetic dataset's annotations.
CLASS_NAMES = ("circle", "square", "triangle", "star", "ring", "cross")
INPUT_SIZE = 320
WEIGHTS_PATH = Path(__file__).parent / "weights" / "nano.pt"

__all__ = ["CLASS_NAMES", "INPUT_SIZE", "WEIGHTS_PATH", "build_model"]


def build_model(weights: str | Path | None = WEIGHTS_PATH):
    """NanoDet in eval mode with ``weights`` (a state_dict file; fp16 tensors load as fp32).

    ``weights=None`` gives a random initialisation. A missing file or mismatched keys raise
    InputError naming the file and the keys.
    """
    from exporters.nano.model import NanoDet
    from exporters.weights import apply_state_dict, load_state_dict

    model = NanoDet(num_classes=len(CLASS_NAMES), input_size=INPUT_SIZE)
    if weights is not None:
        state = load_state_dict(weights)
        apply_state_dict(model, {k: v.float() for k, v in state.items()}, str(weights))
    return model.eval()
