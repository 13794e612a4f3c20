"""Shared setup for the TensorRT builder tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# trt_fakes (documented stand-ins for TensorRT / cuda-python) lives with the runtime tests
sys.path.insert(0, str(Path(__file__).parents[2] / "edgedet" / "trt"))


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """Undo tests/conftest.py's skip for tests that merely live in a folder named `trt`.

    The root hook tests `"trt" in item.keywords`, and pytest puts every parent folder's name
    into the keywords; tests really marked `trt` keep their skip (see tests/edgedet/trt/conftest.py).
    """
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents and item.get_closest_marker("trt") is None:
            item.own_markers[:] = [m for m in item.own_markers
                                   if not (m.name == "skip" and str(m.kwargs.get("reason", "")).startswith("needs full TensorRT"))]
