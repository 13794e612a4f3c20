import json
import os

import numpy as np
import pytest

import edgedet
from edgedet.streams import Pipeline
from edgedet.streams.sources import open_reader, parse_sources
from edgedet.streams.writers import JsonlSink, VideoSink

av = pytest.importorskip("av")


def decoded(path) -> list[np.ndarray]:
    """The video's frames decoded independently of the pipeline (same PyAV reader)."""
    reader = open_reader(parse_sources(str(path))[0])
    try:
        return [rgb for rgb, _ in reader.frames()]
    finally:
        reader.close()


def same(a, b) -> bool:
    return (
        np.array_equal(a.boxes, b.boxes)
        and np.array_equal(a.scores, b.scores)
        and np.array_equal(a.class_ids, b.class_ids)
    )


def test_stream_equals_per_image_path_bit_for_bit(nano_dyn_onnx, sequence):
    path, rendered, _ = sequence
    frames = decoded(path)
    assert len(frames) == len(rendered) == 60
    frames = frames[:30]
    with edgedet.load(nano_dyn_onnx, providers=["cpu"]) as det:
        results = list(det.stream(str(path), max_frames=30))
        reference = [det([rgb])[0] for rgb in frames]
    assert [r.frame for r in results] == list(range(30)) and {r.stream for r in results} == {0}
    assert np.allclose([r.pts for r in results], np.arange(30) / 30)
    assert sum(len(d) for d in reference) > 60  # something to compare: several shapes per frame
    for r, rgb, ref in zip(results, frames, reference):
        assert np.array_equal(r.image, rgb) and same(r.detections, ref)
        assert r.detections.meta["frame"] == r.frame and r.latency > 0


def test_streams_batched_into_one_model_call(nano_dyn_onnx, sequence, tmp_path):
    path = sequence[0]
    frames = decoded(path)[:12]
    with edgedet.load(nano_dyn_onnx, providers=["cpu"]) as det:
        pipe = Pipeline(det, [str(path)] * 3, max_frames=12)
        results = list(pipe)
        reference = [det([rgb])[0] for rgb in frames]
    assert pipe.batch == 3 and max(pipe.stats.batch_sizes) == 3
    assert sum(pipe.stats.batch_sizes) == 36 and len(pipe.stats.batch_sizes) < 36
    for s in range(3):
        mine = [r for r in results if r.stream == s]
        assert [r.frame for r in mine] == list(range(12))  # in order per stream
        assert all(same(r.detections, reference[r.frame]) for r in mine)


def test_overlapping_model_calls_keep_frame_order_and_results(nano_dyn_onnx, sequence):
    """Two backend calls in flight (ONNX Runtime, one intra-op thread each): results still arrive in
    frame order per stream and equal the per-image path bit for bit."""
    from edgedet.streams.pipeline import default_model_workers

    path = sequence[0]
    frames = decoded(path)[:16]
    with edgedet.load(nano_dyn_onnx, providers=["cpu"], threads=1) as det:
        pipe = Pipeline(det, [str(path)] * 2, max_frames=16, batch=1, model_workers=2)
        results = list(pipe)
        reference = [det([rgb])[0] for rgb in frames]
        assert default_model_workers(det.backend) == max(1, min(4, os.cpu_count() or 1))
    assert pipe.model_workers == 2 and len(pipe.stats.batch_sizes) == 32
    for s in range(2):
        mine = [r for r in results if r.stream == s]
        assert [r.frame for r in mine] == list(range(16))
        assert all(same(r.detections, reference[r.frame]) for r in mine)


def test_error_in_an_overlapping_model_call_reaches_the_consumer(nano_dyn_onnx, sequence):
    with edgedet.load(nano_dyn_onnx, providers=["cpu"], threads=1) as det:
        real, calls = det.infer, []

        def infer(batch):  # the third call fails, as a backend error would
            calls.append(1)
            if len(calls) == 3:
                raise RuntimeError("device lost")
            return real(batch)

        det.infer = infer
        got = []
        with pytest.raises(RuntimeError, match="device lost"):
            for r in Pipeline(det, str(sequence[0]), batch=1, model_workers=2):
                got.append(r.frame)
    assert got == [0, 1]  # results before the failed call, in order; nothing after it


def test_outputs_finalised_on_interrupt(nano_dyn_onnx, sequence, tmp_path):
    video, lines = tmp_path / "out" / "shapes.mp4", tmp_path / "out" / "shapes.jsonl"
    with edgedet.load(nano_dyn_onnx, providers=["cpu"]) as det:
        pipe = Pipeline(
            det,
            str(sequence[0]),
            track=True,
            sinks=[VideoSink({0: video}, {0: 30.0}), JsonlSink(lines)],
        )
        seen = 0
        with pytest.raises(KeyboardInterrupt):
            for _ in pipe:  # Ctrl-C in the consumer, as the CLI gets it
                seen += 1
                if seen == 5:
                    raise KeyboardInterrupt
    records = [json.loads(ln) for ln in lines.read_text().splitlines()]
    assert len(records) >= 5 and [r["frame"] for r in records] == list(range(len(records)))
    assert any("track_id" in d for r in records for d in r["detections"])
    with av.open(str(video)) as c:  # a finalised mp4: index written, every written frame decodes
        n = sum(1 for _ in c.decode(video=0))
    assert n == len(records)
    # no temp files
    assert sorted(p.name for p in video.parent.iterdir()) == [
        "shapes.jsonl",
        "shapes.mp4",
    ]


class FailingSink:
    def write(self, result):
        if result.frame == 3:
            raise RuntimeError("disk full")

    def close(self):
        pass


def test_stage_error_reaches_consumer_and_outputs_still_finalised(tiny_nms, sequence, tmp_path):
    lines = tmp_path / "a.jsonl"
    with edgedet.load(tiny_nms) as det:
        with pytest.raises(RuntimeError, match="disk full"):
            for _ in Pipeline(det, str(sequence[0]), sinks=[JsonlSink(lines), FailingSink()]):
                pass
    assert len(lines.read_text().splitlines()) == 4
