"""A live HTTP-MJPEG camera for tests: ``python mjpeg_sender.py PORT [FPS]``.

Serves ``multipart/x-mixed-replace`` JPEG frames (the format of IP cameras and the FFmpeg
``mpjpeg`` muxer) at FPS to every client, each frame stamped with its send time: the top row
holds 48 black/white 8x8 cells, the bits of ``time.time()`` in milliseconds (see ``read_stamp``),
so a receiver can measure sender-to-result latency on the same machine.
"""

from __future__ import annotations

import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np

BITS, CELL = 48, 8
BOUNDARY = "edgedetframe"


def stamp(img: np.ndarray, ms: int) -> None:
    for b in range(BITS):
        img[:CELL, b * CELL : (b + 1) * CELL] = 255 if (ms >> b) & 1 else 0


def read_stamp(rgb: np.ndarray) -> float:
    """The send time (seconds since the epoch) stamped on a decoded frame."""
    cells = rgb[CELL // 2, CELL // 2 :: CELL, 1][:BITS]
    return sum(1 << b for b, v in enumerate(cells) if v > 127) / 1000.0


class Handler(BaseHTTPRequestHandler):
    fps = 30.0

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace;boundary={BOUNDARY}")
        self.end_headers()
        rng = np.random.default_rng(0)
        base = rng.integers(0, 256, (240, 400, 3), dtype=np.uint8)
        k, t_next = 0, time.perf_counter()
        while True:
            img = base.copy()
            x = 40 + (k * 4) % 300
            cv2.rectangle(img, (x, 80), (x + 60, 160), (0, 200, 0), -1)
            stamp(img, int(time.time() * 1000))
            ok, jpg = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 95])
            data = jpg.tobytes()
            try:
                self.wfile.write(
                    f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length:"
                    f" {len(data)}\r\n\r\n".encode()
                    + data
                    + b"\r\n"
                )
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                return
            k += 1
            t_next += 1.0 / self.fps
            time.sleep(max(0.0, t_next - time.perf_counter()))

    def log_message(self, *args):
        pass


def main() -> None:
    port = int(sys.argv[1])
    Handler.fps = float(sys.argv[2]) if len(sys.argv) > 2 else 30.0
    ThreadingHTTPServer.allow_reuse_address = True
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
