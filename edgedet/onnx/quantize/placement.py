"""Which nodes keep higher precision: detection-aware defaults plus user patterns.

Detection heads are fragile under PTQ: box regression needs the outliers that INT8 clips, and the
score sigmoid and NMS thresholds amplify small errors. By default the NMS subgraph, the box decode /
score activation between the last head convolutions and the raw outputs, and those last convolutions
themselves stay in FP32.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edgedet import contract
from edgedet.errors import InputError
from edgedet.nms import opdef
from edgedet.onnx.graph import GraphIndex, ensure_node_names, match_nodes

WEIGHTED_OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul"}
RAW_TENSORS = (contract.RAW_BOXES, contract.RAW_SCORES)
CLASSIFIER_TENSORS = ("probs", "logits")


@dataclass
class Placement:
    """Node names kept out of reduced precision, each with the reason."""

    keep: dict[str, str] = field(default_factory=dict)

    def add(self, names, reason: str) -> None:
        for name in names:
            self.keep.setdefault(name, reason)

    @property
    def names(self) -> list[str]:
        return list(self.keep)

    def summary(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for reason in self.keep.values():
            out[reason] = out.get(reason, 0) + 1
        return out


def head_tensors(model) -> list[str]:
    """The raw-output tensors (graph outputs or intermediates) that mark where the head ends; for
    networks with NMS inside (R-CNN), the boxes/scores entering each EdgeDetNMS node."""
    names = {o for n in model.graph.node for o in n.output} | {o.name for o in model.graph.output}
    found = [t for t in RAW_TENSORS if t in names]
    if found:
        return found
    found = [t for t in CLASSIFIER_TENSORS if t in names]
    if found:
        return found
    found = [t for n in model.graph.node if n.op_type == opdef.OP_TYPE for t in n.input[:2]]
    # NMS inside the network (two-stage): everything from the first EdgeDetNMS on stays FP32
    if found:
        return found
    raise InputError(
        "the model has no 'boxes'/'scores' (or classifier 'probs') tensor; edgedet cannot tell "
        "where the detection head ends. Export it with edgedet or use `edgedet attach-nms` first"
    )


def detection_placement(
    model, keep_last_convs: bool = True, exclude: tuple[str, ...] = ()
) -> Placement:
    """Default placement: NMS + decode + last head convs stay FP32; ``exclude`` patterns add more.

    Raises InputError for a pattern that matches nothing (a typo would silently do nothing).
    """
    ensure_node_names(model)
    index = GraphIndex.of(model)
    ends = head_tensors(model)
    placement = Placement()
    placement.add((n.name for n in index.downstream(ends)), "nms/post-processing")
    passed, last_convs = index.upstream_until(ends, WEIGHTED_OPS)
    placement.add((n.name for n in passed), "head decode / activation")
    if keep_last_convs:
        placement.add((n.name for n in last_convs), "last head convolution")
    for pattern, names in match_nodes(model, exclude).items():
        if not names:
            raise InputError(
                f"--exclude '{pattern}' matches no node name or op type in the model; "
                "list node names with `edgedet check-qdq --list-nodes MODEL`"
            )
        placement.add(names, f"--exclude {pattern}")
    return placement
