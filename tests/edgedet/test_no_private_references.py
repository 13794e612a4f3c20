"""Every reference in the repo points at something a user has: no internal notes (issue 12)."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SKIP = {".venv", ".git", ".edgedet-cache", "build", "node_modules", "__pycache__"}
SUFFIXES = {".py", ".md", ".cpp", ".cu", ".h", ".sh", ".toml", ".txt", ".json", ".yaml", ".yml"}
PRIVATE = ("FIELD" + "-NOTES",)  # the project's internal notes document, not shipped


def test_no_reference_to_internal_notes():
    hits = []
    for folder, dirs, files in os.walk(ROOT):
        # venvs, caches, .git
        dirs[:] = [d for d in dirs if d not in SKIP and not d.startswith(".")]
        for name in files:
            path = Path(folder) / name
            if path.suffix not in SUFFIXES:
                continue
            text = path.read_text(errors="ignore")
            hits += [
                f"{path.relative_to(ROOT)}:{n}"
                for n, line in enumerate(text.splitlines(), 1)
                if any(p in line for p in PRIVATE)
            ]
    assert not hits, (
        "cite the public source (TensorRT docs, header, release notes) instead: " + ", ".join(hits)
    )
