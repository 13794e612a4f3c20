import warnings

import numpy as np
import pytest

import edgedet
from edgedet.streams.track import ByteTracker, box_iou

pytest.importorskip("scipy")


def boxes_at(xs, y=50.0, w=30.0):
    return np.array([[x, y, x + w, y + w] for x in xs], np.float32)


def test_ids_follow_moving_boxes_and_low_scores_keep_tracks():
    tr = ByteTracker()
    cls = np.zeros(2, np.int32)
    first = tr.update(boxes_at([10, 200]), np.array([0.9, 0.8]), cls)
    assert first.tolist() == [1, 2]  # confirmed on the stream's first frame
    for step in range(1, 10):  # moving 5 px a frame, listed in the other order
        ids = tr.update(boxes_at([200 + 5 * step, 10 + 5 * step]), np.array([0.8, 0.9]), cls)
        assert ids.tolist() == [2, 1]
    # an occluded frame: the object's score falls to 0.3; the second association keeps its id
    ids = tr.update(boxes_at([255, 60]), np.array([0.3, 0.9]), cls)
    assert ids.tolist() == [2, 1]
    # a low-score box where no track is: background, never a track
    assert tr.update(boxes_at([400]), np.array([0.3]), np.zeros(1, np.int32)).tolist() == [-1]


def test_new_objects_need_two_frames_and_duplicates_are_ignored():
    tr = ByteTracker()
    tr.update(np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int32))
    # unconfirmed
    assert tr.update(boxes_at([10]), np.array([0.9]), np.zeros(1, np.int32)).tolist() == [-1]
    assert tr.update(boxes_at([12]), np.array([0.9]), np.zeros(1, np.int32)).tolist() == [1]
    # the same object also reported as another class (per-class NMS): not a second track
    two = np.concatenate([boxes_at([14]), boxes_at([15])])
    for _ in range(3):
        assert tr.update(two, np.array([0.9, 0.7]), np.array([0, 3], np.int32)).tolist() == [1, -1]


def test_lost_track_expires_after_buffer():
    tr = ByteTracker(track_buffer=3)
    tr.update(boxes_at([10]), np.array([0.9]), np.zeros(1, np.int32))
    for _ in range(5):
        tr.update(np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int32))
    assert tr.tracks == []
    assert tr.update(boxes_at([10]), np.array([0.9]), np.zeros(1, np.int32)).tolist() == [-1]


def test_mota_idf1_on_synthetic_sequence(nano_dyn_onnx, sequence):
    """Tracks of the moving-shapes video against the generator's ground truth (motmetrics)."""
    mm = pytest.importorskip("motmetrics")
    path, _, truth = sequence
    with edgedet.load(nano_dyn_onnx, providers=["cpu"]) as det:
        results = list(det.stream(str(path), track=True))
    acc = mm.MOTAccumulator(auto_id=True)
    for r, gt in zip(results, truth):
        keep = r.track_ids >= 0
        # motmetrics' own iou_matrix uses np.asfarray, removed in numpy 2: same distance, computed
        # here
        iou = box_iou(np.array([b for _, _, b in gt]), r.detections.boxes[keep].astype(np.float64))
        acc.update(
            [i for i, _, _ in gt], r.track_ids[keep].tolist(), np.where(iou >= 0.5, 1 - iou, np.nan)
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summary = mm.metrics.create().compute(
            acc, metrics=["mota", "idf1", "num_switches"], name="nano"
        )
    mota, idf1 = float(summary["mota"].iloc[0]), float(summary["idf1"].iloc[0])
    print(f"MOTA {mota:.3f} IDF1 {idf1:.3f} switches {int(summary['num_switches'].iloc[0])}")
    assert len(results) == len(truth) == 60
    assert mota >= 0.90 and idf1 >= 0.90
