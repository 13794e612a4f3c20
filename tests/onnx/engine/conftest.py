"""Shared setup for the TensorRT builder tests."""

from __future__ import annotations

import sys
from pathlib import Path

# trt_fakes (documented stand-ins for TensorRT / cuda-python) lives with the runtime tests
sys.path.insert(0, str(Path(__file__).parents[2] / "edgedet" / "trt"))
