"""Detections for one image, in original-image pixels."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Detections:
    """Detections for one image.

    boxes:      float32 [N, 4] (x1, y1, x2, y2) in original-image pixels
    scores:     float32 [N]
    class_ids:  int32   [N], 0-based indices into ``class_names``
    class_names: the model's class names (all of them, not per detection)
    masks:      optional bool [N, H, W] instance masks in original-image pixels
    """

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    class_names: tuple[str, ...] = ()
    image_size: tuple[int, int] = (0, 0)  # (height, width) of the original image
    masks: np.ndarray | None = None
    source: str = ""
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    @property
    def labels(self) -> list[str]:
        """Class name of each detection."""
        return [self._name(int(c)) for c in self.class_ids]

    def _name(self, c: int) -> str:
        return self.class_names[c] if 0 <= c < len(self.class_names) else f"class{c}"

    def filter(self, min_score: float) -> Detections:
        keep = self.scores >= min_score
        masks = self.masks[keep] if self.masks is not None else None
        return Detections(
            self.boxes[keep],
            self.scores[keep],
            self.class_ids[keep],
            self.class_names,
            self.image_size,
            masks,
            self.source,
            dict(self.meta),
        )

    def to_coco(self, image_id: int | str, category_ids: list[int] | None = None) -> list[dict]:
        """COCO-results records: bbox as [x, y, w, h]; category id = class index + 1 unless
        mapped."""
        out = []
        for (x1, y1, x2, y2), s, c in zip(
            self.boxes.tolist(), self.scores.tolist(), self.class_ids.tolist()
        ):
            cat = category_ids[c] if category_ids is not None else c + 1
            out.append(
                {
                    "image_id": image_id,
                    "category_id": int(cat),
                    "bbox": [round(x1, 3), round(y1, 3), round(x2 - x1, 3), round(y2 - y1, 3)],
                    "score": round(float(s), 5),
                }
            )
        return out

    def draw(self, image: np.ndarray, min_score: float = 0.0, thickness: int = 2) -> np.ndarray:
        """Return a copy of ``image`` (RGB uint8 [H, W, 3]) with boxes and labels drawn."""
        import cv2

        canvas = np.ascontiguousarray(image.copy())
        for i in np.flatnonzero(self.scores >= min_score):
            color = _color(int(self.class_ids[i]))
            x1, y1, x2, y2 = (int(round(v)) for v in self.boxes[i])
            if self.masks is not None:
                m = self.masks[i]
                canvas[m] = (0.5 * canvas[m] + 0.5 * np.array(color)).astype(np.uint8)
            cv2.rectangle(canvas, (x1, y1), (x2, y2), color, thickness)
            text = f"{self._name(int(self.class_ids[i]))} {self.scores[i]:.2f}"
            (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
            ty = max(y1, th + 4)
            cv2.rectangle(canvas, (x1, ty - th - 4), (x1 + tw + 2, ty), color, -1)
            cv2.putText(
                canvas,
                text,
                (x1 + 1, ty - 3),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.45,
                (255, 255, 255),
                1,
                cv2.LINE_AA,
            )
        return canvas

    def __repr__(self) -> str:
        top = ", ".join(f"{n} {s:.2f}" for n, s in zip(self.labels[:5], self.scores[:5].tolist()))
        more = f", ... (+{len(self) - 5})" if len(self) > 5 else ""
        return f"Detections({len(self)} in {self.image_size[1]}x{self.image_size[0]}: {top}{more})"


def _color(class_id: int) -> tuple[int, int, int]:
    """A stable, distinct colour per class (golden-ratio hue walk)."""
    import colorsys

    r, g, b = colorsys.hsv_to_rgb((class_id * 0.618033988749895) % 1.0, 0.75, 0.9)
    return int(r * 255), int(g * 255), int(b * 255)
