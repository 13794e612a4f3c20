"""Run a detector over a labelled set and score it with COCO mAP."""

from __future__ import annotations

import time

from edgedet.errors import InputError
from edgedet.eval.coco import coco_map
from edgedet.eval.datasets import Dataset


def category_mapping(
    class_names: list[str], dataset: Dataset, category_ids: list[int] | None
) -> list[int]:
    """COCO category id for each model class index: by name when the names agree, else the
    manifest's ids."""
    by_name = {n: cid for cid, n in dataset.category_names.items()}
    if class_names and any(n in by_name for n in class_names):
        return [by_name.get(n, -1) for n in class_names]
    if category_ids:
        return list(category_ids)
    raise InputError(
        "cannot match the model's classes to the dataset's categories (no shared names and no "
        "category_ids in the manifest)"
    )


def evaluate(
    detector, dataset: Dataset, limit: int | None = None, batch_size: int = 1, progress=None
) -> dict:
    """mAP of ``detector`` on ``dataset``; returns the 12 COCO stats plus timing and counts."""
    images = dataset.coco["images"][:limit] if limit else dataset.coco["images"]
    mapping = category_mapping(
        list(detector.manifest.class_names), dataset, detector.manifest.category_ids
    )
    detections, t0 = [], time.perf_counter()
    step = max(1, min(batch_size, detector.max_batch))
    for start in range(0, len(images), step):
        chunk = images[start : start + step]
        # decoded as inference decodes
        results = detector.predict([dataset.image_path(im) for im in chunk])
        for im, dets in zip(chunk, results):
            detections.extend(r for r in dets.to_coco(im["id"], mapping) if r["category_id"] >= 0)
        if progress:
            progress(min(start + step, len(images)), len(images))
    seconds = time.perf_counter() - t0
    gt = dict(dataset.coco, images=images) if limit else dataset.coco
    if limit:
        ids = {im["id"] for im in images}
        gt["annotations"] = [a for a in dataset.coco["annotations"] if a["image_id"] in ids]
    stats = coco_map(gt, detections)
    return {
        **stats,
        "images": len(images),
        "detections": len(detections),
        "seconds": round(seconds, 2),
    }
