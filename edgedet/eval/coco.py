"""COCO mAP with faster-coco-eval (a maintained, faster drop-in for pycocotools' COCOeval).

Ground truth is a COCO instances JSON; detections are COCO-results records
``{"image_id", "category_id", "bbox": [x, y, w, h], "score"}`` in original-image pixels.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path

from edgedet.errors import InputError, require

STAT_NAMES = (
    "mAP",
    "mAP50",
    "mAP75",
    "mAP_small",
    "mAP_medium",
    "mAP_large",
    "AR1",
    "AR10",
    "AR100",
    "AR_small",
    "AR_medium",
    "AR_large",
)


def load_coco_gt(path: str | os.PathLike) -> dict:
    path = Path(path)
    try:
        gt = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise InputError(f"annotation file {path} does not exist") from None
    except UnicodeDecodeError:
        raise InputError(
            f"annotation file {path} is not UTF-8 text; save it as UTF-8 JSON"
        ) from None
    except (OSError, ValueError) as exc:
        raise InputError(f"annotation file {path} is not valid JSON ({exc})") from None
    check_coco_gt(gt, path)
    return gt


def check_coco_gt(gt, path) -> None:
    """The COCO instances fields evaluation relies on; InputError naming the file and the entry."""
    from edgedet.manifest import json_type

    if not isinstance(gt, dict):
        raise InputError(f"annotation file {path} holds a JSON {json_type(gt)}, not a COCO object")
    for key in ("images", "annotations", "categories"):
        if key not in gt:
            raise InputError(
                f"annotation file {path} has no '{key}' list; expected COCO instances format"
            )
        if not isinstance(gt[key], list):
            raise InputError(
                f"annotation file {path}: '{key}' is a {json_type(gt[key])}, not a list; "
                "expected COCO instances format"
            )
    need = {
        "images": ("id", "file_name"),
        "annotations": ("image_id", "category_id", "bbox"),
        "categories": ("id", "name"),
    }
    for key, fields in need.items():
        for i, entry in enumerate(gt[key]):
            missing = [f for f in fields if not isinstance(entry, dict) or f not in entry]
            if missing:
                raise InputError(
                    f"annotation file {path}: {key}[{i}] has no '{missing[0]}'; expected COCO"
                    " instances format"
                )
            if key == "images" and not isinstance(entry["file_name"], str):
                raise InputError(f"annotation file {path}: images[{i}].file_name is not a string")
            if key == "annotations":
                box = entry["bbox"]
                if (
                    not isinstance(box, list)
                    or len(box) != 4
                    or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box)
                ):
                    raise InputError(
                        f"annotation file {path}: annotations[{i}].bbox is {box!r}; "
                        "COCO boxes are [x, y, width, height]"
                    )


def coco_map(gt: dict, detections: list[dict]) -> dict[str, float]:
    """Run COCOeval (bbox) and return the 12 standard statistics by name.

    Images absent from ``detections`` count as having no detections.
    """
    fce = require("faster_coco_eval", "eval", "mAP evaluation")
    coco_gt = fce.COCO()
    coco_gt.dataset = gt
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt.createIndex()
        if not detections:
            return {name: 0.0 for name in STAT_NAMES}
        coco_dt = coco_gt.loadRes([dict(d) for d in detections])
        ev = fce.COCOeval_faster(coco_gt, coco_dt, "bbox", print_function=lambda *a, **k: None)
        ev.params.imgIds = sorted(img["id"] for img in gt["images"])
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {name: float(v) for name, v in zip(STAT_NAMES, ev.stats)}
