"""ByteTrack: multi-object tracking by associating every detection box, high and low score.

Zhang et al., "ByteTrack: Multi-Object Tracking by Associating Every Detection Box", ECCV 2022
(arXiv:2110.06864). Written here from the paper (numpy + scipy's linear_sum_assignment):

1. Every track's box is predicted by a constant-velocity Kalman filter over (cx, cy, aspect, h).
2. High-score detections (>= ``track_thresh``) are matched to all tracks (tracked and lost) by
   IoU with the Hungarian algorithm (accept IoU >= 1 - ``match_thresh``).
3. Low-score detections (``low_thresh`` .. ``track_thresh``) are matched to the still unmatched
   *tracked* tracks (accept IoU >= 0.5): occluded or blurred objects keep their id instead of
   being dropped, and background boxes (which match no track) are ignored.
4. Unconfirmed tracks (seen once) are matched to the remaining high boxes (IoU >= 0.3) or removed;
   remaining high boxes >= ``new_track_thresh`` start tracks; a track lost for more than
   ``track_buffer`` frames is removed.
Association is class-agnostic, as in the paper; detectors run NMS per class, so a detection
overlapping a higher-scoring one of another class by IoU >= ``duplicate_iou`` is a duplicate of
the same object and takes part in no association (it would otherwise start a second track:
on one of four nano moving-shapes sequences, dropping them raised MOTA from 0.84 to 1.00).
Ids are given when a track is confirmed (its second frame, or the stream's first frame), so
ids count up without gaps from 1.
"""

from __future__ import annotations

import numpy as np

from edgedet.errors import require

TRACKED, LOST, REMOVED = 0, 1, 2
_STD_POS, _STD_VEL = 1.0 / 20, 1.0 / 160  # noise per unit box height (the paper's MOT settings)


class KalmanBoxFilter:
    """Constant-velocity Kalman filter on (cx, cy, a, h, vcx, vcy, va, vh), a = w / h."""

    def __init__(self) -> None:
        self.F = np.eye(8)
        self.F[:4, 4:] = np.eye(4)
        self.H = np.eye(4, 8)

    def initiate(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h = z[3]
        std = np.array(
            [
                2 * _STD_POS * h,
                2 * _STD_POS * h,
                1e-2,
                2 * _STD_POS * h,
                10 * _STD_VEL * h,
                10 * _STD_VEL * h,
                1e-5,
                10 * _STD_VEL * h,
            ]
        )
        return np.r_[z, np.zeros(4)], np.diag(std**2)

    def predict(self, mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Batched: mean [K, 8], cov [K, 8, 8]."""
        h = mean[:, 3]
        std = np.stack(
            [
                _STD_POS * h,
                _STD_POS * h,
                np.full_like(h, 1e-2),
                _STD_POS * h,
                _STD_VEL * h,
                _STD_VEL * h,
                np.full_like(h, 1e-5),
                _STD_VEL * h,
            ],
            1,
        )
        q = np.zeros_like(cov)
        q[:, np.arange(8), np.arange(8)] = std**2
        return mean @ self.F.T, self.F @ cov @ self.F.T + q

    def update(
        self, mean: np.ndarray, cov: np.ndarray, z: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        h = mean[3]
        r = np.diag(np.array([_STD_POS * h, _STD_POS * h, 1e-1, _STD_POS * h]) ** 2)
        s = self.H @ cov @ self.H.T + r
        gain = np.linalg.solve(s, self.H @ cov).T  # cov H^T S^-1 (S symmetric)
        return mean + gain @ (z - self.H @ mean), cov - gain @ s @ gain.T


class Track:
    def __init__(self, mean, cov, score: float, cls: int, frame: int) -> None:
        self.mean, self.cov, self.score, self.cls = mean, cov, score, cls
        self.state, self.id, self.last_frame, self.hits = TRACKED, 0, frame, 1

    @property
    def box(self) -> np.ndarray:
        """Predicted/updated box (x1, y1, x2, y2)."""
        return xyah_to_xyxy(self.mean[:4])


class ByteTracker:
    """One tracker per stream. ``update`` once per frame, in order."""

    def __init__(
        self,
        track_thresh: float = 0.5,
        low_thresh: float = 0.1,
        new_track_thresh: float = 0.6,
        match_thresh: float = 0.8,
        track_buffer: int = 30,
        duplicate_iou: float = 0.7,
    ) -> None:
        self.track_thresh, self.low_thresh, self.new_track_thresh = (
            track_thresh,
            low_thresh,
            new_track_thresh,
        )
        self.match_thresh, self.track_buffer, self.duplicate_iou = (
            match_thresh,
            track_buffer,
            duplicate_iou,
        )
        self.kf = KalmanBoxFilter()
        self.tracks: list[Track] = []  # tracked + lost (removed ones are dropped)
        self.frame = 0
        self.next_id = 1

    def update(self, boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray) -> np.ndarray:
        """Detections of one frame -> track id per detection (int64 [N], -1 for unmatched ones).

        boxes [N, 4] (x1, y1, x2, y2), scores [N], classes [N].
        """
        self.frame += 1
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        scores = np.asarray(scores, np.float64).reshape(-1)
        ids = np.full(len(scores), -1, np.int64)
        self._predict()
        usable = self._not_duplicate(boxes, scores)
        high = np.flatnonzero(usable & (scores >= self.track_thresh))
        low = np.flatnonzero(usable & (scores >= self.low_thresh) & (scores < self.track_thresh))
        confirmed = [t for t in self.tracks if t.id]
        unconfirmed = [t for t in self.tracks if not t.id]
        # 1: high boxes vs every confirmed track (tracked or lost)
        rest_t, rest_high = self._associate(
            confirmed, high, boxes, scores, classes, ids, 1 - self.match_thresh
        )
        # 2: low boxes vs the tracked tracks still unmatched
        tracked = [t for t in rest_t if t.state == TRACKED]
        rest_tracked, _ = self._associate(tracked, low, boxes, scores, classes, ids, 0.5)
        for t in rest_tracked:
            t.state = LOST
        # 3: unconfirmed tracks vs the remaining high boxes
        rest_u, rest_high = self._associate(
            unconfirmed, rest_high, boxes, scores, classes, ids, 0.3
        )
        for t in rest_u:
            t.state = REMOVED
        # 4: new tracks
        for i in rest_high:
            if scores[i] >= self.new_track_thresh:
                mean, cov = self.kf.initiate(xyxy_to_xyah(boxes[i]))
                track = Track(mean, cov, float(scores[i]), int(classes[i]), self.frame)
                self.tracks.append(track)
                if self.frame == 1:  # nothing to confirm against on the first frame
                    ids[i] = self._confirm(track)
        for t in self.tracks:
            if t.state == LOST and self.frame - t.last_frame > self.track_buffer:
                t.state = REMOVED
        self.tracks = [t for t in self.tracks if t.state != REMOVED]
        return ids

    def _not_duplicate(self, boxes: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """Bool [N]: False for a box overlapping a higher-scoring kept box by IoU >=
        duplicate_iou."""
        keep = np.ones(len(scores), bool)
        if len(scores) < 2:
            return keep
        iou = box_iou(boxes, boxes)
        for i in np.argsort(-scores, kind="stable"):
            if keep[i]:
                later = iou[i] >= self.duplicate_iou
                later[i] = False
                keep &= ~(later & (scores <= scores[i]))
        return keep

    def _predict(self) -> None:
        if not self.tracks:
            return
        mean = np.stack([t.mean for t in self.tracks])
        cov = np.stack([t.cov for t in self.tracks])
        mean[[i for i, t in enumerate(self.tracks) if t.state != TRACKED], 7] = (
            0  # lost: keep the height
        )
        mean, cov = self.kf.predict(mean, cov)
        for t, m, c in zip(self.tracks, mean, cov):
            t.mean, t.cov = m, c

    def _associate(
        self, tracks: list[Track], dets: np.ndarray, boxes, scores, classes, ids, min_iou: float
    ):
        """Hungarian matching on IoU; matched tracks are updated and their ids written to ``ids``.
        Returns (unmatched tracks, unmatched detection indices)."""
        if not tracks or not len(dets):
            return tracks, dets
        linear_sum_assignment = require(
            "scipy.optimize", "streams", "Tracking (--track)"
        ).linear_sum_assignment
        iou = box_iou(np.stack([t.box for t in tracks]), boxes[dets])
        rows, cols = linear_sum_assignment(-iou)
        ok = iou[rows, cols] >= min_iou
        rows, cols = rows[ok], cols[ok]
        for r, c in zip(rows, cols):
            t, i = tracks[r], dets[c]
            t.mean, t.cov = self.kf.update(t.mean, t.cov, xyxy_to_xyah(boxes[i]))
            t.score, t.cls, t.state, t.last_frame = (
                float(scores[i]),
                int(classes[i]),
                TRACKED,
                self.frame,
            )
            t.hits += 1
            ids[i] = t.id or self._confirm(t)
        matched_t, matched_d = set(rows.tolist()), set(cols.tolist())
        return (
            [t for k, t in enumerate(tracks) if k not in matched_t],
            np.array([d for k, d in enumerate(dets) if k not in matched_d], np.int64),
        )

    def _confirm(self, track: Track) -> int:
        track.id = self.next_id
        self.next_id += 1
        return track.id


def xyxy_to_xyah(b: np.ndarray) -> np.ndarray:
    w, h = b[2] - b[0], max(b[3] - b[1], 1e-6)
    return np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2, w / h, h])


def xyah_to_xyxy(s: np.ndarray) -> np.ndarray:
    w = s[2] * s[3]
    return np.array([s[0] - w / 2, s[1] - s[3] / 2, s[0] + w / 2, s[1] + s[3] / 2])


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix [len(a), len(b)] of (x1, y1, x2, y2) boxes."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0, None).prod(-1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0, None).prod(-1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-12)
