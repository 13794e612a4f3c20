"""Train the nano detector on the synthetic shapes dataset and ship its weights.

    python -m exporters.nano.train [--out exporters/nano/weights/nano.pt]
                                   [--epochs E] [--train-size N]

Steps: generate the train and val splits (cached in ``data/synthetic/``) -> letterbox every
train image to 320 with the runtime's own ``read_image`` + ``letterbox`` (cached as one uint8
.npy) -> train with fixed seeds (AdamW, warmup + cosine, EMA, dihedral flips and colour
jitter) -> save the EMA weights as fp16 -> reload the saved file and measure COCO mAP on
the val split -> write the ``nano.json`` sidecar.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from copy import deepcopy
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

# Sleep instead of spin in OpenMP barriers. Must be set before torch loads. On the shared 2-core
# machine with other jobs running, a training step took 1.5 CPU-s with it and 3-4.5 CPU-s
# without (spinning threads), i.e. 5.5 vs 2.6 img/s (/tmp bench, batch 16, 2 threads).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from edgedet.eval.coco import coco_map, load_coco_gt  # noqa: E402
from edgedet.fileio import write_text_atomic  # noqa: E402
from edgedet.preprocess import (
    letterbox,
    letterbox_info,
    read_image,
    unletterbox_boxes,
)  # noqa: E402
from exporters.nano import (
    CLASS_NAMES,
    INPUT_SIZE,
    WEIGHTS_PATH,
    build_model,
    synthetic,
)  # noqa: E402
from exporters.nano.loss import LossConfig, detection_loss  # noqa: E402
from exporters.nano.model import NanoDet  # noqa: E402

PAD_VALUE = 114


@dataclass(frozen=True)
class EvalNMS:
    """Post-processing for evaluation. The defaults are the exported graph's
    (exporters/nano/export.py)."""

    score_threshold: float = 0.05
    iou_threshold: float = 0.6
    max_detections: int = 100
    top_k: int = 1000  # candidates (box, class) per image entering NMS, ranked by score


# COCO evaluation protocol: keep (almost) every scored box, as YOLO/Ultralytics val (conf 0.001)
# and mmdetection test configs do; 0.05 above is a deployment filter that drops true positives.
COCO_PROTOCOL = EvalNMS(score_threshold=0.001)


@dataclass
class TrainConfig:
    out: Path = WEIGHTS_PATH
    data_root: Path = Path("data/synthetic")
    train_size: int = 8000
    val_size: int = synthetic.VAL_SIZE
    epochs: int = 3
    batch_size: int = 16
    lr: float = 3e-3
    weight_decay: float = 0.05
    warmup_steps: int = 150
    ema_decay: float = 0.998
    seed: int = 0
    workers: int = 2
    threads: int = 2
    eval_every: int = 0  # epochs; 0: only the final evaluation of the saved file
    log_every: int = 25


# ---------------------------------------------------------------- data


def split_dir(root: Path, seed: int, size: int) -> Path:
    """Generate (once) the synthetic split and return its folder."""
    folder = Path(root) / f"nano-v{synthetic.GENERATOR_VERSION}-seed{seed}-n{size}"
    if not (folder / "annotations.json").exists():
        synthetic.generate_dataset(folder, size, seed, workers=max(1, os.cpu_count() or 1))
    return folder


def _letterbox_files(paths: list[str], size: int) -> np.ndarray:
    return np.stack([letterbox(read_image(p), size, size, PAD_VALUE)[0] for p in paths])


def letterboxed_split(folder: Path, size: int, workers: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Every image of a split letterboxed to ``size``: uint8 [N, size, size, 3] (memory-mapped cache
    ``letterbox{size}.npy``) and per image an array [K, 5] (class, x1, y1, x2, y2) in input px.
    """
    gt = load_coco_gt(folder / "annotations.json")
    images = sorted(gt["images"], key=lambda im: im["id"])
    cache = folder / f"letterbox{size}.npy"
    if not cache.exists():
        paths = [str(folder / "images" / im["file_name"]) for im in images]
        chunks = [paths[i : i + 100] for i in range(0, len(paths), 100)]
        tmp = cache.with_suffix(".tmp.npy")
        arr = np.lib.format.open_memmap(tmp, "w+", np.uint8, (len(paths), size, size, 3))
        with ProcessPoolExecutor(workers) as pool:
            for i, block in enumerate(pool.map(_letterbox_files, chunks, [size] * len(chunks))):
                arr[i * 100 : i * 100 + len(block)] = block
        arr.flush()
        del arr
        tmp.replace(cache)
    return np.load(cache, mmap_mode="r"), _targets(gt, images, size)


def _targets(gt: dict, images: list[dict], size: int) -> list[np.ndarray]:
    """COCO boxes mapped into the letterboxed input, [K, 5] (class index, x1, y1, x2, y2) per
    image."""
    by_image = {im["id"]: [] for im in images}
    for a in gt["annotations"]:
        x, y, w, h = a["bbox"]
        by_image[a["image_id"]].append([a["category_id"] - 1, x, y, x + w, y + h])
    out = []
    for im in images:
        t = np.array(by_image[im["id"]], np.float32).reshape(-1, 5)
        info = letterbox_info(im["height"], im["width"], size, size)
        # integer offsets, as letterbox() pads
        pad = np.array([int(info.pad_x), int(info.pad_y)] * 2, np.float32)
        t[:, 1:] = t[:, 1:] * info.scale + pad
        out.append(t)
    return out


def dihedral(img: np.ndarray, boxes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """One of the 8 flips/transpositions (``k`` in 0..7) of a square image [S, S, 3] (a view, no
    copy) and its boxes [K, 4] xyxy. Every class is symmetric under these, so labels do not change.
    """
    s = img.shape[0]
    boxes = boxes.copy()
    if k & 1:
        img, boxes[:, [0, 2]] = img[:, ::-1], s - boxes[:, [2, 0]]
    if k & 2:
        img, boxes[:, [1, 3]] = img[::-1], s - boxes[:, [3, 1]]
    if k & 4:
        img, boxes = img.transpose(1, 0, 2), boxes[:, [1, 0, 3, 2]]
    return img, boxes


def make_batch(images: np.ndarray, targets: list[np.ndarray], idx, rng: np.random.Generator | None):
    """Images [B, 3, S, S] float 0..1 and padded targets: labels [B, M] long, boxes [B, M, 4]
    xyxy input px, mask [B, M] bool. ``rng`` given: dihedral flips + colour jitter.

    The flips and channel permutations are numpy views of the uint8 canvases and the jitter is one
    batched affine: per-image torch ops cost 20 % of a training step at 2 threads (thread wake-ups
    on many tiny ops), this costs about 3 %.
    """
    canvases, boxes = [images[i] for i in idx], [targets[i][:, 1:] for i in idx]
    if rng is not None:
        for j in range(len(idx)):
            canvases[j], boxes[j] = dihedral(canvases[j], boxes[j], int(rng.integers(8)))
            if rng.random() < 0.5:  # object colours carry no class information
                canvases[j] = canvases[j][..., rng.permutation(3)]
    x = torch.from_numpy(np.stack(canvases)).permute(0, 3, 1, 2).float()
    if rng is not None:  # contrast 0.8..1.2 about mid-grey, brightness +-0.08
        gain = torch.from_numpy(rng.uniform(0.8, 1.2, len(idx)).astype(np.float32)).view(
            -1, 1, 1, 1
        )
        shift = torch.from_numpy(rng.uniform(-0.08, 0.08, len(idx)).astype(np.float32)).view(
            -1, 1, 1, 1
        )
        x = x.mul_(gain / 255).add_(0.5 * (1 - gain) + shift).clamp_(0, 1)
    else:
        x = x.div_(255)
    m = max(1, max(len(t) for t in boxes))
    labels = torch.zeros(len(idx), m, dtype=torch.long)
    gt = torch.zeros(len(idx), m, 4)
    mask = torch.zeros(len(idx), m, dtype=torch.bool)
    for j, i in enumerate(idx):
        k = len(targets[i])
        labels[j, :k], gt[j, :k], mask[j, :k] = (
            torch.from_numpy(targets[i][:, 0]).long(),
            torch.from_numpy(boxes[j]),
            True,
        )
    return x, labels, gt, mask


# ---------------------------------------------------------------- training


class EMA:
    """Exponential moving average of all float weights and buffers; ramps up from 0 so the
    first steps are not dominated by the random initialisation."""

    def __init__(self, model: torch.nn.Module, decay: float, ramp: float = 200.0) -> None:
        self.model = deepcopy(model).eval().requires_grad_(False)
        self.decay, self.ramp, self.updates = decay, ramp, 0

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.updates += 1
        d = self.decay * (1 - math.exp(-self.updates / self.ramp))
        own = model.state_dict()
        for k, v in self.model.state_dict().items():
            if v.dtype.is_floating_point:
                v.mul_(d).add_(own[k].detach(), alpha=1 - d)
            else:
                v.copy_(own[k])


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; no weight decay on BatchNorm and biases (1-d parameters)."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    return torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=cfg.lr,
        betas=(0.9, 0.99),
    )


def lr_at(step: int, total: int, cfg: TrainConfig) -> float:
    """Linear warmup, then cosine from lr to 2 % of lr."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    t = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
    return cfg.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * t)))


def train(
    cfg: TrainConfig, images: np.ndarray, targets: list[np.ndarray], on_epoch=None, log=print
) -> NanoDet:
    """Train from scratch with fixed seeds; returns the EMA model (eval mode)."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = NanoDet(len(CLASS_NAMES), INPUT_SIZE).train()
    ema, opt = EMA(model, cfg.ema_decay), make_optimizer(model, cfg)
    steps = len(images) // cfg.batch_size
    total, step, t0, seen = cfg.epochs * steps, 0, time.perf_counter(), 0
    for epoch in range(cfg.epochs):
        order = rng.permutation(len(images))
        for i in range(steps):
            for group in opt.param_groups:
                group["lr"] = lr_at(step, total, cfg)
            batch = make_batch(
                images, targets, order[i * cfg.batch_size : (i + 1) * cfg.batch_size], rng
            )
            loss, parts = detection_loss(model, *model(batch[0]), *batch[1:])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            opt.step()
            ema.update(model)
            step, seen = step + 1, seen + len(batch[0])
            if step % cfg.log_every == 0 or step == total:
                rate = seen / (time.perf_counter() - t0)
                log(
                    f"epoch {epoch + 1} step {step}/{total} loss {loss.item():.3f} "
                    + " ".join(f"{k} {v:.3f}" for k, v in parts.items())
                    + f" lr {opt.param_groups[0]['lr']:.5f} {rate:.1f} img/s"
                )
        if on_epoch is not None:
            on_epoch(epoch + 1, ema.model)
    return ema.model.eval()


def save_weights(model: torch.nn.Module, path: Path) -> None:
    """Save the state_dict with floating tensors in fp16 (half the size; loads back into fp32)."""
    state = {k: v.half() if v.dtype.is_floating_point else v for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


# ---------------------------------------------------------------- evaluation


def postprocess(
    boxes: torch.Tensor, scores: torch.Tensor, nms: EvalNMS
) -> tuple[torch.Tensor, ...]:
    """One image: boxes [N, 4] xyxy, scores [N, C] -> kept boxes [K, 4], scores [K], classes [K].

    Multi-label: every (box, class) pair above the threshold is a candidate; NMS per class.
    """
    from torchvision.ops import batched_nms

    c = scores.shape[1]
    flat = scores.flatten()
    cand = torch.nonzero(flat > nms.score_threshold).flatten()
    cand = cand[flat[cand].argsort(descending=True)[: nms.top_k]]
    b, s, cls = boxes[cand // c], flat[cand], cand % c
    keep = batched_nms(b, s, cls, nms.iou_threshold)[: nms.max_detections]
    return b[keep], s[keep], cls[keep]


@torch.no_grad()
def detect(
    model: NanoDet, rgb_images: list[np.ndarray], nms: EvalNMS = EvalNMS()
) -> list[tuple[np.ndarray, ...]]:
    """RGB uint8 images -> per image (boxes [K, 4] xyxy original px, scores [K], class indices
    [K])."""
    size = model.input_size
    canvases, infos = zip(*(letterbox(im, size, size, PAD_VALUE) for im in rgb_images))
    x = torch.from_numpy(np.stack(canvases)).permute(0, 3, 1, 2).float().div_(255)
    boxes, scores = model.eval()(x)
    out = []
    for b, s, info in zip(boxes, scores, infos):
        kb, ks, kc = postprocess(b, s, nms)
        out.append((unletterbox_boxes(kb.numpy(), info), ks.numpy(), kc.numpy()))
    return out


def evaluate(
    model: NanoDet, folder: Path, nms: EvalNMS = EvalNMS(), batch: int = 32
) -> dict[str, float]:
    """COCO mAP (the 12 standard stats) of ``model`` on a split folder (annotations.json +
    images/)."""
    gt = load_coco_gt(folder / "annotations.json")
    results = []
    for i in range(0, len(gt["images"]), batch):
        chunk = gt["images"][i : i + batch]
        dets = detect(model, [read_image(folder / "images" / im["file_name"]) for im in chunk], nms)
        for im, (boxes, scores, classes) in zip(chunk, dets):
            for (x1, y1, x2, y2), s, c in zip(boxes.tolist(), scores.tolist(), classes.tolist()):
                results.append(
                    {
                        "image_id": im["id"],
                        "category_id": c + 1,
                        "bbox": [x1, y1, x2 - x1, y2 - y1],
                        "score": s,
                    }
                )
    return coco_map(gt, results)


# ---------------------------------------------------------------- command


def machine() -> dict:
    from edgedet.bench import machine_info

    return {
        **machine_info(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
    }


def write_record(cfg: TrainConfig, metrics: dict, timings: dict, extra: dict) -> Path:
    """The sidecar nano.json next to the weights."""
    model = build_model(cfg.out)
    record = {
        "weights": cfg.out.name,
        "file_bytes": cfg.out.stat().st_size,
        "dtype": "float16 (loaded as float32)",
        "parameters": sum(p.numel() for p in model.parameters()),
        "input_size": INPUT_SIZE,
        "class_names": list(CLASS_NAMES),
        "category_ids": [i + 1 for i in range(len(CLASS_NAMES))],
        "command": " ".join(["python -m exporters.nano.train", *map(shlex.quote, sys.argv[1:])]),
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()},
        "loss": asdict(LossConfig()),
        "dataset": {
            "generator_version": synthetic.GENERATOR_VERSION,
            "train_seed": synthetic.TRAIN_SEED,
            "train_images": cfg.train_size,
            "val_seed": synthetic.VAL_SEED,
            "val_images": cfg.val_size,
            "classes": len(CLASS_NAMES),
            "min_visible": synthetic.MIN_VISIBLE,
            "image_sides": [synthetic.MIN_SIDE, synthetic.MAX_SIDE],
            "max_objects": synthetic.MAX_OBJECTS,
        },
        "eval_nms": asdict(EvalNMS()),
        "val_metrics": metrics,
        "timings_s": timings,
        "machine": machine(),
        **extra,
    }
    record.update(coco_protocol_record(model, cfg))
    return _write_json(cfg.out.with_suffix(".json"), record)


def coco_protocol_record(model: NanoDet, cfg: TrainConfig) -> dict:
    """``model`` (the shipped weights) evaluated under the COCO protocol (score threshold 0.001)."""
    val_dir = split_dir(cfg.data_root, synthetic.VAL_SEED, cfg.val_size)
    return {
        "eval_nms_coco_protocol": asdict(COCO_PROTOCOL),
        "val_metrics_coco_protocol": evaluate(model, val_dir, COCO_PROTOCOL),
    }


def _write_json(path: Path, record: dict) -> Path:
    write_text_atomic(path, json.dumps(record, indent=2) + "\n")
    return path


def reevaluate(cfg: TrainConfig, log=print) -> Path:
    """Evaluate the shipped weights again (both protocols) and update their record in place;
    the training fields (command, timings, machine) are left as the training run wrote them."""
    path = cfg.out.with_suffix(".json")
    record, model = json.loads(path.read_text()), build_model(cfg.out)
    record["val_metrics"] = evaluate(
        model, split_dir(cfg.data_root, synthetic.VAL_SEED, cfg.val_size)
    )
    record.update(coco_protocol_record(model, cfg))
    for key in ("val_metrics", "val_metrics_coco_protocol"):
        log(f"{key}: mAP {record[key]['mAP']:.4f} mAP50 {record[key]['mAP50']:.4f}")
    return _write_json(path, record)


def run(cfg: TrainConfig, log=print) -> dict:
    torch.set_num_threads(cfg.threads)
    t0 = time.perf_counter()
    train_dir = split_dir(cfg.data_root, synthetic.TRAIN_SEED, cfg.train_size)
    val_dir = split_dir(cfg.data_root, synthetic.VAL_SEED, cfg.val_size)
    images, targets = letterboxed_split(train_dir, INPUT_SIZE, cfg.workers)
    t1 = time.perf_counter()
    log(f"data ready in {t1 - t0:.0f} s: {len(images)} train images, val {val_dir}")

    def on_epoch(epoch, model):
        if cfg.eval_every and epoch % cfg.eval_every == 0 and epoch < cfg.epochs:
            m = evaluate(model, val_dir)
            log(f"epoch {epoch}: val mAP {m['mAP']:.4f} mAP50 {m['mAP50']:.4f}")

    model = train(cfg, images, targets, on_epoch, log)
    t2 = time.perf_counter()
    save_weights(model, cfg.out)
    metrics = evaluate(build_model(cfg.out), val_dir)
    t3 = time.perf_counter()
    log("val (shipped fp16 weights): " + " ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    seen = cfg.epochs * (len(images) // cfg.batch_size) * cfg.batch_size
    timings = {
        "data": round(t1 - t0, 1),
        "train": round(t2 - t1, 1),
        "eval": round(t3 - t2, 1),
        "total": round(t3 - t0, 1),
    }
    extra = {"images_seen": seen, "train_images_per_s": round(seen / (t2 - t1), 2)}
    log(f"wrote {write_record(cfg, metrics, timings, extra)}; total {timings['total']:.0f} s")
    return metrics


def main(argv=None) -> None:
    d = TrainConfig()
    p = argparse.ArgumentParser(
        description="Train the nano detector on the synthetic shapes dataset."
    )
    p.add_argument(
        "--out",
        type=Path,
        default=d.out,
        help="weights file to write (a .json sidecar goes beside it)",
    )
    p.add_argument(
        "--data-root", type=Path, default=d.data_root, help="cache folder for generated splits"
    )
    p.add_argument(
        "--train-size", type=int, default=d.train_size, help="training images to generate"
    )
    p.add_argument("--val-size", type=int, default=d.val_size, help="validation images")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--seed", type=int, default=d.seed, help="torch + batch order/augmentation seed")
    p.add_argument(
        "--eval-every", type=int, default=d.eval_every, help="evaluate every N epochs (0: end only)"
    )
    p.add_argument("--threads", type=int, default=d.threads, help="torch CPU threads")
    p.add_argument(
        "--evaluate-only",
        action="store_true",
        help=(
            "no training: evaluate --out again (graph NMS and COCO protocol) and update its record"
        ),
    )
    a = p.parse_args(argv)
    if a.evaluate_only:
        torch.set_num_threads(a.threads)
        print(
            "updated"
            f" {reevaluate(TrainConfig(out=a.out, data_root=a.data_root, val_size=a.val_size))}"
        )
        return
    run(
        TrainConfig(
            out=a.out,
            data_root=a.data_root,
            train_size=a.train_size,
            val_size=a.val_size,
            epochs=a.epochs,
            batch_size=a.batch_size,
            lr=a.lr,
            seed=a.seed,
            eval_every=a.eval_every,
            threads=a.threads,
        )
    )


if __name__ == "__main__":
    main()
