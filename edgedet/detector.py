"""The Detector: manifest -> backend -> letterbox -> infer -> (host NMS) -> original pixels."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from edgedet import contract
from edgedet.detections import Detections
from edgedet.errors import InputError, ManifestError
from edgedet.manifest import InputInfo, Manifest
from edgedet.nms.params import NMSParams
from edgedet.preprocess import (
    LetterboxInfo,
    as_rgb8,
    fit_to_input,
    read_image,
    read_image_for_input,
    to_input,
    unletterbox_boxes,
)

ImageLike = str | os.PathLike | np.ndarray


class Model:
    """What every runtime model shares: manifest, backend, letterbox pre-processing, batching."""

    full_decode = False  # True: decode every JPEG at full size (read_image) before letterboxing

    def __init__(self, path: Path, backend, manifest: Manifest | None = None) -> None:
        self.path = Path(path)
        self.backend = backend
        self.manifest = manifest or infer_manifest(backend)
        self.input: InputInfo = self.manifest.input
        self.kind = self.manifest.output_kind
        self.nms_params = self.manifest.nms or NMSParams()
        fixed = self.backend.inputs[0].shape[0]
        self.max_batch = fixed if fixed else 32
        # run-time NMS thresholds (exported with --runtime-thresholds): fed with every batch
        self.threshold_inputs = [
            s.name for s in self.backend.inputs if s.name in contract.THRESHOLD_INPUTS
        ]

    def __call__(self, images: ImageLike | Sequence[ImageLike], **kw):
        """Run on one image (returns one result) or a list (returns a list)."""
        if isinstance(images, (str, os.PathLike)) or (
            isinstance(images, np.ndarray) and images.ndim in (2, 3)
        ):
            return self.predict([images], **kw)[0]
        if isinstance(images, np.ndarray) and images.ndim != 4:
            raise InputError(
                f"an image array has shape {images.shape}; expected H x W x 3 (or a batch N x H x W"
                " x 3)"
            )
        if not isinstance(images, (list, tuple, np.ndarray)):
            raise InputError(
                f"cannot run on a {type(images).__name__}; pass an image path, an RGB array or a"
                " list of them"
            )
        return self.predict(list(images), **kw)

    def predict(self, images: Iterable[ImageLike], **post) -> list:
        """Batch API: images are paths or RGB uint8 arrays; chunks follow the model's batch size.

        Keyword arguments go to ``postprocess`` (``min_score`` for detectors, ``top_k`` for
        classifiers).
        """
        items = list(images)
        results: list = []
        for start in range(0, len(items), self.max_batch):
            chunk = items[start : start + self.max_batch]
            batch, infos, names = self.preprocess(chunk)
            outputs = self.infer(batch, check_values=False)  # pixels / 255: finite, no NaN/Inf scan
            results.extend(self.postprocess(outputs, infos, names, **post))
        return results

    def postprocess(
        self, outputs: dict[str, np.ndarray], infos: list[LetterboxInfo], names: list[str], **kw
    ) -> list:
        raise NotImplementedError

    def preprocess(
        self, images: list[ImageLike]
    ) -> tuple[np.ndarray, list[LetterboxInfo], list[str]]:
        """Read and letterbox images into the contract input [B, 3, H, W] (padded to a fixed
        batch)."""
        canvases, infos, names = [], [], []
        for i, item in enumerate(images):
            if not isinstance(item, (str, os.PathLike, np.ndarray)):
                raise InputError(
                    f"image #{i} is a {type(item).__name__}; pass an image path or an RGB uint8"
                    " array"
                )
            rgb, size = (
                self._read(item)
                if isinstance(item, (str, os.PathLike))
                else (as_rgb8(item, f"image #{i}"), None)
            )
            canvas, info = fit_to_input(
                rgb,
                self.input.height,
                self.input.width,
                self.input.pad_value,
                self.input.resize,
                self.input.padding,
                self.input.channel_order,
                size,
            )
            canvases.append(canvas)
            infos.append(info)
            names.append(str(item) if isinstance(item, (str, os.PathLike)) else f"image #{i}")
        fixed = self.backend.inputs[0].shape[0]
        while fixed and len(canvases) < fixed:  # a fixed-batch model still serves fewer images
            canvases.append(canvases[-1])
        return to_input(canvases, self.input.dtype), infos, names

    def _read(self, path) -> tuple[np.ndarray, tuple[int, int] | None]:
        if self.full_decode:
            return read_image(path), None
        return read_image_for_input(path, self.input.height, self.input.width, self.input.resize)

    def infer(self, batch: np.ndarray, check_values: bool = True) -> dict[str, np.ndarray]:
        """Run the backend on a ready input batch; returns the raw named outputs (``check_values``:
        Backend.infer's NaN/Inf scan of the batch)."""
        feed = {self.input.name: batch}
        for name in self.threshold_inputs:
            value = (
                self.nms_params.score_threshold
                if name == contract.SCORE_THRESHOLD_INPUT
                else self.nms_params.iou_threshold
            )
            feed[name] = np.array([value], np.float32)
        return self.backend.infer(feed, check_values)

    def set_thresholds(self, score: float | None = None, iou: float | None = None) -> None:
        """Change the NMS thresholds for later calls: host NMS (raw models) and models exported with
        run-time threshold inputs; NMS baked into the graph refuses with what to do instead."""
        changes = {
            k: check_fraction(v, k)
            for k, v in (("score_threshold", score), ("iou_threshold", iou))
            if v is not None
        }
        if iou is not None and self.manifest.nms_implementation == contract.END_TO_END:
            raise InputError(
                f"{self.path.name} has an end-to-end head (no NMS): there is no IoU threshold"
                " to set"
            )
        if changes and self.kind == contract.KIND_NMS and not self.threshold_inputs:
            raise InputError(
                f"{self.path.name} has its NMS thresholds built into the graph; re-export it with "
                "`--nms edgedet --runtime-thresholds` (or --nms none) to change them at run time"
            )
        self.nms_params = self.nms_params.replace(**changes)

    def close(self) -> None:
        self.backend.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        m = self.manifest
        return (
            f"{type(self).__name__}({self.path.name}: {m.family}/{m.model}, {m.num_classes}"
            f" classes, input {list(m.input.shape)} {m.input.dtype}, NMS {m.nms_where},"
            f" {self.backend.name})"
        )


class Detector(Model):
    """Runs one detector artifact on images; returns :class:`Detections` in original pixels."""

    def postprocess(
        self,
        outputs: dict[str, np.ndarray],
        infos: list[LetterboxInfo],
        names: list[str],
        min_score: float = 0.0,
    ) -> list[Detections]:
        """Contract outputs -> per-image Detections in original pixels (host NMS for raw models)."""
        check_fraction(min_score, "min_score")
        if self.manifest.notes.get("inferred") and not getattr(self, "_outputs_checked", False):
            from edgedet.output_checks import refuse_implausible

            refuse_implausible(outputs, self.kind, self.input.height, self.input.width, self.path)
            self._outputs_checked = (
                True  # once per model: the check is about the file, not the image
            )
        if (
            self.kind == contract.KIND_RAW
            and self.manifest.nms_implementation == contract.END_TO_END
        ):
            from edgedet.nms.topk import select_topk  # end-to-end head: threshold + top-k, no NMS

            res = select_topk(
                outputs[contract.RAW_BOXES],
                outputs[contract.RAW_SCORES],
                self.nms_params,
                outputs.get(contract.RAW_LABELS),
            )
            outputs = dict(zip(contract.NMS_OUTPUTS, res[:4]))
        elif self.kind == contract.KIND_RAW:
            from edgedet.nms.host import batched_nms

            res = batched_nms(
                outputs[contract.RAW_BOXES], outputs[contract.RAW_SCORES], self.nms_params
            )
            outputs = {
                contract.NUM_DETS: res.num_dets,
                contract.DET_BOXES: res.det_boxes,
                contract.DET_SCORES: res.det_scores,
                contract.DET_CLASSES: res.det_classes,
            }
        contract.check_outputs(outputs, contract.KIND_NMS)
        return [self._one(outputs, b, info, names[b], min_score) for b, info in enumerate(infos)]

    def stream(self, source, **options):
        """Iterate per-frame results of a video file, URL, camera, folder or list of them,
        pipelined:
        ``for r in det.stream("video.mp4", track=True)``. Options: edgedet.streams.Pipeline."""
        from edgedet.streams import stream

        return stream(self, source, **options)

    def _one(self, outputs, b: int, info: LetterboxInfo, name: str, min_score: float) -> Detections:
        n = int(outputs[contract.NUM_DETS][b, 0])
        k = outputs[contract.DET_SCORES].shape[1]
        if not 0 <= n <= k:
            from edgedet.errors import ModelError

            raise ModelError(
                f"{self.path.name} reported num_dets {n} for {name}, outside 0..{k} (its K); the"
                " model breaks the output contract (docs/contract.md): re-export it"
            )
        scores = outputs[contract.DET_SCORES][b, :n].astype(np.float32)
        keep = np.flatnonzero(scores >= min_score) if min_score > 0 else np.arange(n)
        keep = _finite_rows(keep, outputs[contract.DET_BOXES][b], scores, name)
        boxes = unletterbox_boxes(outputs[contract.DET_BOXES][b, keep].astype(np.float32), info)
        masks = None
        if contract.DET_MASKS in outputs:  # Mask R-CNN: [B, K, M, M] probabilities in box frames
            from edgedet.masks import paste_masks

            masks = paste_masks(
                outputs[contract.DET_MASKS][b, keep], boxes, (info.orig_h, info.orig_w)
            )
        return Detections(
            boxes,
            scores[keep],
            outputs[contract.DET_CLASSES][b, keep].astype(np.int32),
            tuple(self.manifest.class_names),
            (info.orig_h, info.orig_w),
            masks=masks,
            source=name,
        )


def check_fraction(value, name: str) -> float:
    """Scores and IoUs are finite numbers in 0..1: NaN would silently switch a filter off."""
    import math

    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.floating, np.integer))
        or not math.isfinite(value)
        or not 0.0 <= value <= 1.0
    ):
        raise InputError(f"{name} must be a number in 0..1, got {value!r}")
    return float(value)


def _finite_rows(keep: np.ndarray, boxes: np.ndarray, scores: np.ndarray, name: str) -> np.ndarray:
    """Drop detections with NaN/inf boxes or scores (a broken or overflowing model) with one
    warning:
    they cannot be drawn, matched or mapped back to pixels."""
    ok = np.isfinite(boxes[keep]).all(axis=1) & np.isfinite(scores[keep])
    if not ok.all():
        import warnings

        warnings.warn(
            f"{name}: dropped {int((~ok).sum())} detection(s) with non-finite (NaN/inf) boxes or"
            " scores; the model's outputs overflow (an FP16 range problem?) or it is broken",
            stacklevel=3,
        )
    return keep[ok]


def check_manifest_matches(m: Manifest, backend, where) -> None:
    """The manifest must describe this graph: its output form, input size and class count.

    ``backend`` is anything with ``inputs``/``outputs`` lists of (name, shape) specs; 0, -1 or None
    mark a dynamic dimension."""
    names = [o.name for o in backend.outputs]
    if m.output_kind == contract.KIND_CLASSIFY:
        graph_kind = contract.KIND_CLASSIFY if contract.CLASS_PROBS in names else None
    else:
        try:
            graph_kind = contract.output_kind(names)
        except Exception:  # noqa: BLE001 - reported below with the manifest's view
            graph_kind = None
    if graph_kind != m.output_kind:
        raise ManifestError(
            f"manifest {where}: field 'output_kind' is {m.output_kind!r} but the graph's outputs "
            f"{names} say {graph_kind!r}; the manifest belongs to another model: re-export it"
        )
    spec = backend.inputs[0] if backend.inputs else None
    if spec is not None and len(spec.shape) == 4:
        for axis, label in ((2, "height"), (3, "width")):
            if (spec.shape[axis] or 0) > 0 and spec.shape[axis] != m.input.shape[axis]:
                raise ManifestError(
                    f"manifest {where}: field 'input.shape' has {label} {m.input.shape[axis]} but"
                    f" the graph takes {spec.shape[axis]}; the manifest belongs to another model"
                )
    outs = {o.name: o for o in backend.outputs}
    scores = (
        outs.get(contract.RAW_SCORES)
        if m.output_kind == contract.KIND_RAW
        else outs.get(contract.CLASS_PROBS)
    )
    # an end-to-end head that picked each box's class: scores [B, N, 1]
    if contract.RAW_LABELS in outs:
        scores = None
    if (
        scores is not None
        and scores.shape
        and (scores.shape[-1] or 0) > 0
        and scores.shape[-1] != m.num_classes
    ):
        raise ManifestError(
            f"manifest {where}: field 'class_names' lists {m.num_classes} classes but the graph "
            f"scores {scores.shape[-1]}; fix the class names or re-export the model"
        )


def infer_manifest(backend) -> Manifest:
    """A manifest for a contract-following artifact that came without one."""
    if not backend.inputs:
        raise ManifestError("the model has no inputs")
    spec = backend.inputs[0]
    if len(spec.shape) != 4 or spec.shape[1] != 3 or not spec.shape[2] or not spec.shape[3]:
        raise ManifestError(
            f"input '{spec.name}' has shape {spec.shape}; edgedet needs [B, 3, H, W] with fixed"
            " H, W"
        )
    names = [o.name for o in backend.outputs]
    kind = contract.output_kind(names)
    outs = {o.name: o for o in backend.outputs}
    num_classes = outs[contract.RAW_SCORES].shape[-1] if kind == contract.KIND_RAW else None
    if kind == contract.KIND_RAW and not num_classes:
        raise ManifestError(
            "the 'scores' output has a dynamic class dimension; add a manifest with class names"
        )
    shape = (spec.shape[0] or -1, 3, spec.shape[2], spec.shape[3])
    return Manifest(
        family="unknown",
        model="unknown",
        class_names=[f"class{i}" for i in range(num_classes or 0)] if num_classes else [],
        input=InputInfo(spec.name, shape, np.dtype(spec.dtype).name),
        output_kind=kind,
        nms_where="host" if kind == contract.KIND_RAW else "graph",
        nms=NMSParams() if kind == contract.KIND_RAW else None,
        notes={"inferred": "no manifest found"},
    )
