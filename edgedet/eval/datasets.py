"""Labelled image sets for evaluation and calibration: COCO JSON and YOLO txt layouts.

Both load into one in-memory COCO-format dict (images, annotations, categories)
plus the folder the image file names are relative to.

COCO:  DIR/annotations.json + DIR/images/ (or --ann FILE --images DIR)
YOLO:  DIR/images/*.jpg + DIR/labels/*.txt ("class cx cy w h", normalised 0..1)
       + class names from DIR/classes.txt (one per line) or DIR/data.yaml `names:`
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from edgedet.errors import InputError
from edgedet.eval.coco import load_coco_gt
from edgedet.preprocess import IMAGE_SUFFIXES


@dataclass
class Dataset:
    coco: dict
    image_root: Path
    format: str

    def image_path(self, image: dict) -> Path:
        return self.image_root / image["file_name"]

    @property
    def category_names(self) -> dict[int, str]:
        return {c["id"]: c["name"] for c in self.coco["categories"]}


def load_dataset(path: str | os.PathLike, images: str | os.PathLike | None = None) -> Dataset:
    """Load a COCO JSON file, a COCO folder or a YOLO folder (detected by layout)."""
    path = Path(path)
    if path.is_file():
        root = Path(images) if images else path.parent / "images"
        return Dataset(load_coco_gt(path), root, "coco")
    if (path / "annotations.json").is_file():
        return Dataset(
            load_coco_gt(path / "annotations.json"),
            Path(images) if images else path / "images",
            "coco",
        )
    if (path / "labels").is_dir():
        return load_yolo(path)
    raise InputError(
        f"{path} is neither a COCO annotation file, a folder with annotations.json, "
        "nor a YOLO folder with images/ and labels/"
    )


def load_yolo(root: Path) -> Dataset:
    names = _yolo_names(root)
    image_dir = root / "images"
    files = (
        sorted(p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if image_dir.is_dir()
        else []
    )
    if not files:
        raise InputError(f"YOLO dataset {root} has no images in {image_dir}")
    from PIL import Image

    images, anns = [], []
    for image_id, f in enumerate(files, start=1):
        try:
            with Image.open(f) as im:
                w, h = im.size
        except (OSError, SyntaxError, ValueError) as exc:
            raise InputError(
                f"YOLO dataset image {f} cannot be read ({type(exc).__name__}: empty or corrupt); "
                "remove or replace it"
            ) from None
        images.append({"id": image_id, "file_name": f.name, "width": w, "height": h})
        label = root / "labels" / f"{f.stem}.txt"
        for line_no, line in enumerate(
            _read_text(label).splitlines() if label.exists() else [], start=1
        ):
            anns.append(_yolo_ann(line, line_no, label, image_id, w, h, len(names), len(anns) + 1))
    anns = [a for a in anns if a]
    cats = [{"id": i + 1, "name": n} for i, n in enumerate(names)]
    return Dataset({"images": images, "annotations": anns, "categories": cats}, image_dir, "yolo")


def _yolo_ann(line, line_no, label, image_id, w, h, num_classes, ann_id):
    parts = line.split()
    if not parts:
        return None
    try:
        c, cx, cy, bw, bh = int(parts[0]), *map(float, parts[1:5])
    except (ValueError, TypeError):
        raise InputError(
            f"{label}:{line_no}: expected 'class cx cy w h', got '{line.strip()}'"
        ) from None
    if len(parts) < 5 or not all(math.isfinite(v) for v in (cx, cy, bw, bh)):
        raise InputError(
            f"{label}:{line_no}: expected 'class cx cy w h' with finite numbers, got"
            f" '{line.strip()}'"
        )
    if not 0 <= c < num_classes:
        raise InputError(f"{label}:{line_no}: class {c} is outside the {num_classes} class names")
    bw, bh = bw * w, bh * h
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": c + 1,
        "iscrowd": 0,
        "area": bw * bh,
        "bbox": [cx * w - bw / 2, cy * h - bh / 2, bw, bh],
    }


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 text; save it as UTF-8") from None
    except OSError as exc:
        raise InputError(f"{path} cannot be read ({exc.strerror})") from None


def _yolo_names(root: Path) -> list[str]:
    if (root / "classes.txt").is_file():
        return [n.strip() for n in _read_text(root / "classes.txt").splitlines() if n.strip()]
    yaml = root / "data.yaml"
    if yaml.is_file():
        names = _names_from_yaml(_read_text(yaml))
        if names:
            return names
    raise InputError(
        f"YOLO dataset {root} needs class names in classes.txt or data.yaml (names: [...])"
    )


def _names_from_yaml(text: str) -> list[str]:
    """Read `names:` as a flow list or an index mapping, without a YAML dependency."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith("names:"):
            rest = line.split(":", 1)[1].strip()
            if rest.startswith("["):
                return [n.strip().strip("'\"") for n in rest.strip("[]").split(",") if n.strip()]
            names = []
            for sub in lines[i + 1 :]:
                item = sub.strip()
                if not sub[:1].isspace() or not item:
                    break
                if item.startswith("-"):
                    names.append(item[1:].strip().strip("'\""))
                elif ":" in item:
                    names.append(item.split(":", 1)[1].strip().strip("'\""))
                else:
                    break
            return names
    return []
