"""Stream inference: video files, network streams (RTSP/RTMP/HTTP), cameras, image folders.

    for r in detector.stream("video.mp4", track=True):
        print(r.stream, r.frame, r.pts, r.detections, r.track_ids)

``sources`` parses what the user typed and opens readers (PyAV / OpenCV); ``capture`` runs one
decode + letterbox thread per stream under a frame policy (``latest`` or ``all``); ``pipeline``
batches frames of all streams into the model and post-processes on its own thread; ``track`` is
ByteTrack; ``writers`` writes annotated mp4 and JSON Lines; ``bench`` measures a source end to
end. See docs/streams.md.
"""

from edgedet.streams.pipeline import Pipeline, StreamResult, StreamStats, stream
from edgedet.streams.sources import SourceSpec, is_stream_source, parse_sources

__all__ = ["Pipeline", "StreamResult", "StreamStats", "SourceSpec", "is_stream_source", "parse_sources", "stream"]
