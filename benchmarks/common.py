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
    payload = {"benchmark": name, "machine": machine_info(),
               "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), **results}
    write_text_atomic(path, json.dumps(payload, indent=2) + "\n")
    return path


def ms(seconds: float) -> float:
    return round(seconds * 1e3, 3)
