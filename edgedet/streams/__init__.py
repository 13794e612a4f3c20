"""Stream inference: video files, network streams (RTSP/RTMP/HTTP), cameras, image folders.

    for r in detector.stream("video.mp4", track=True):
        print(r.stream, r.frame, r.pts, r.detections, r.track_ids)

``sources`` parses what the user typed and opens readers (PyAV / OpenCV); ``capture`` runs one
decode + letterbox thread per stream under a frame policy (``latest`` or ``all``); ``pipeline``
batches frames of all streams into the model and post-processes on its own thread; ``track`` is
ByteTrack; ``writers`` writes annotated mp4 and JSON Lines; ``bench`` measures a source end to
end; ``cli`` is the glue for `edgedet infer` and `edgedet bench`. See docs/streams.md.
"""

from __future__ import annotations

__all__ = [
    "Pipeline",
    "StreamResult",
    "StreamStats",
    "SourceSpec",
    "is_stream_source",
    "parse_sources",
    "stream",
]


def __getattr__(name):  # lazy: the CLI imports edgedet.streams.cli without the runtime
    if name in ("Pipeline", "StreamResult", "StreamStats", "stream"):
        from edgedet.streams import pipeline

        return getattr(pipeline, name)
    if name in ("SourceSpec", "is_stream_source", "parse_sources"):
        from edgedet.streams import sources

        return getattr(sources, name)
    raise AttributeError(f"module 'edgedet.streams' has no attribute {name!r}")
