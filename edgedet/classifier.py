"""Classifier: the runtime for ``task: classify`` artifacts (output ``probs`` [B, C])."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgedet import contract
from edgedet.detector import Model
from edgedet.errors import ModelError


@dataclass
class Classifications:
    """Top-k classes of one image: class_ids int [k], probs float32 [k] (descending)."""

    class_ids: np.ndarray
    probs: np.ndarray
    class_names: tuple[str, ...] = ()
    source: str = ""

    @property
    def labels(self) -> list[str]:
        return [
            self.class_names[c] if c < len(self.class_names) else f"class{c}"
            for c in self.class_ids.tolist()
        ]

    def __repr__(self) -> str:
        top = ", ".join(f"{n} {p:.3f}" for n, p in zip(self.labels, self.probs.tolist()))
        return f"Classifications({top})"


class Classifier(Model):
    """Runs an image classifier artifact; returns the top-k classes per image."""

    def postprocess(self, outputs, infos, names, top_k: int = 5) -> list[Classifications]:
        if contract.CLASS_PROBS not in outputs:
            raise ModelError(f"classifier returned no '{contract.CLASS_PROBS}' output")
        if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
            from edgedet.errors import InputError

            raise InputError(f"top_k must be a positive integer, got {top_k!r}")
        probs = outputs[contract.CLASS_PROBS].astype(np.float32)
        k = min(top_k, probs.shape[1])
        out = []
        for b in range(len(infos)):
            idx = np.argsort(-probs[b], kind="stable")[:k]
            out.append(
                Classifications(
                    idx.astype(np.int64), probs[b, idx], tuple(self.manifest.class_names), names[b]
                )
            )
        return out
