"""The PyTorch model itself behind the runtime's Backend interface.

Lets eval, bench and compare treat "the original model" like any artifact: the
Detector letterboxes, the module produces the raw contract, host NMS runs with
the same parameters the export would bake in.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from edgedet import contract
from edgedet.backends.base import Backend, IOSpec
from edgedet.detector import Detector
from edgedet.manifest import InputInfo, Manifest
from exporters.base import ExportableModel


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, exportable: ExportableModel, threads: int | None = None) -> None:
        super().__init__()
        self.module = exportable.module.eval()
        self.output_names = exportable.output_names
        if threads:
            torch.set_num_threads(threads)
        h, w = exportable.imgsz
        self.inputs = [IOSpec(contract.INPUT_NAME, np.dtype(np.float32), (None, 3, h, w))]
        self.outputs = [IOSpec(n, np.dtype(np.float32), ()) for n in self.output_names]

    @torch.inference_mode()
    def _infer_impl(self, feed):
        out = self.module(torch.from_numpy(feed[contract.INPUT_NAME]))
        out = out if isinstance(out, (tuple, list)) else (out,)
        return {name: t.numpy() for name, t in zip(self.output_names, out)}

    def describe(self) -> dict:
        return {
            "backend": self.name,
            "torch": torch.__version__,
            "device": "cpu",
            "threads": torch.get_num_threads(),
        }


def torch_detector(exportable: ExportableModel, threads: int | None = None) -> Detector:
    """A Detector running the PyTorch module with host NMS (the reference for parity)."""
    h, w = exportable.imgsz
    manifest = Manifest(
        family=exportable.family,
        model=exportable.name,
        class_names=list(exportable.class_names),
        input=InputInfo(contract.INPUT_NAME, (-1, 3, h, w), "float32"),
        output_kind=contract.KIND_RAW,
        nms=exportable.nms,
        nms_where="host",
        nms_implementation="host",
        category_ids=exportable.category_ids,
        normalization=exportable.normalization,
        source=exportable.source,
        notes={"backend": "torch"},
    )
    return Detector(Path(f"<torch:{exportable.name}>"), TorchBackend(exportable, threads), manifest)


def open_torch_operand(spec: str) -> Detector:
    """'NAME[@weights.pt]' (what follows `torch:` in `edgedet compare`) -> the PyTorch model as a
    Detector."""
    from exporters.pipeline import ExportOptions, build_exportable

    name, _, weights = spec.partition("@")
    return torch_detector(build_exportable(ExportOptions(model=name, weights=weights or None)))
