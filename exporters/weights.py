"""Loading user weights into a model, with mismatches spelled out."""

from __future__ import annotations

import os
from pathlib import Path

from edgedet.errors import InputError, first_line
from edgedet.fileio import sha256_file

_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "ema")


def load_state_dict(path: str | os.PathLike) -> dict:
    """Read a state_dict saved with torch.save (``weights_only=True``: no code runs on load).

    Accepts a bare state_dict or a checkpoint dict holding one under a common key.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise InputError(f"weights file {path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors, zip errors, unsupported globals
        first = first_line(exc, 200)
        raise InputError(
            f"cannot read weights {path}: {first}. edgedet needs a state_dict saved with "
            "torch.save(model.state_dict(), path); full pickled models are refused for safety"
        ) from None
    if isinstance(obj, dict):
        for key in _WRAPPER_KEYS:
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(hasattr(v, "shape") for v in obj.values()):
        raise InputError(f"weights {path} hold a {type(obj).__name__}, not a state_dict of tensors")
    return obj


def apply_state_dict(module, state: dict, source: str) -> None:
    """Load ``state`` strictly; InputError listing missing, unexpected and mis-shaped keys."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k} {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or shapes:
        parts = []
        for label, keys in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("shape mismatch", shapes),
        ):
            if keys:
                more = f" (+{len(keys) - 8} more)" if len(keys) > 8 else ""
                parts.append(f"{label} {len(keys)}: {', '.join(keys[:8])}{more}")
        hint = (
            "; check --model, or pass --num-classes if the head was trained for other classes"
            if shapes
            else ""
        )
        raise InputError(f"weights {source} do not fit the model: " + "; ".join(parts) + hint)
    module.load_state_dict(state, strict=True)


def weights_record(path: str | os.PathLike | None) -> dict:
    """The manifest's ``source`` entry for a weights file (or random initialisation)."""
    if path is None:
        return {"weights": None, "random_init": True}
    path = Path(path)
    return {"weights": str(path), "sha256": sha256_file(path), "random_init": False}
