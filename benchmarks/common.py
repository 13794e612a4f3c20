"""Shared helpers for benchmark scripts: output folder, JSON writing, machine label."""

from __future__ import annotations

import json
import time
from pathlib import Path

from edgedet.bench import machine_info
from edgedet.fileio import write_text_atomic


def write_results(path: str | Path, name: str, results: dict) -> Path:
    """Write ``results`` with the machine and a timestamp; returns the path."""
    path = Path(path)
    payload = {
        "benchmark": name,
        "machine": machine_info(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        **results,
    }
    write_text_atomic(path, json.dumps(payload, indent=2) + "\n")
    return path


def ms(seconds: float) -> float:
    return round(seconds * 1e3, 3)


def realistic_random_model(em, images, head, target_std: float = 2.5) -> None:
    """Make a randomly initialised torchvision detector behave like a trained one, for benchmarks
    only.

    No pretrained weights can be downloaded on our machines. BatchNorm statistics are re-estimated
    on the given real images (so activations have realistic scale) and the class head is rescaled
    so its logits have standard deviation ``target_std`` (scores spread out without saturating).
    """
    import numpy as np
    import torch

    from edgedet.preprocess import letterbox, to_input

    h, w = em.imgsz
    x = torch.from_numpy(to_input([letterbox(img, h, w)[0] for img in images]))
    bns = [m for m in em.module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    with torch.no_grad():
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None
        em.module.train()
        em.module(x)
        em.module.eval()
        seen = []
        hook = head.register_forward_hook(lambda m, i, o: seen.append(o.float().std()))
        em.module(x)
        hook.remove()
        scale = target_std / max(float(np.mean([float(s) for s in seen])), 1e-12)
        # only the final convolutions' weights: the spread scales exactly, and the bias
        # (RetinaNet/FCOS's -4.6 prior) keeps scores off 0 and 1
        for layer in logit_layers(head):
            layer.weight.mul_(scale)


def logit_layers(head):
    """The convolutions that emit a torchvision classification head's logits."""
    import torch

    if hasattr(head, "cls_logits"):  # RetinaNet, FCOS
        return [head.cls_logits]
    # SSD, SSDlite
    return [m[-1] if isinstance(m, torch.nn.Sequential) else m for m in head.module_list]


def photo_crops(images, out_dir, per_image: int = 40, seed: int = 0):
    """Deterministic random crops (and flips) of a few photos, written as JPEGs: a calibration set.

    Only 8 real photos exist on our machines; 300+ calibration images are recommended.
    """
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images):
        h, w = img.shape[:2]
        for j in range(per_image):
            s = rng.uniform(0.4, 1.0)
            ch, cw = int(h * s), int(w * s)
            y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
            crop = img[y : y + ch, x : x + cw]
            if rng.random() < 0.5:
                crop = crop[:, ::-1]
            Image.fromarray(np.ascontiguousarray(crop)).save(
                out_dir / f"{i:02d}_{j:03d}.jpg", quality=92
            )
    return out_dir
