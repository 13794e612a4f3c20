"""The sensitivity report: ranked JSON, and a bar chart beside it where matplotlib is installed."""

from __future__ import annotations

import json
from pathlib import Path

from edgedet.fileio import atomic_path, write_text_atomic


def write_report(report: dict, path: Path) -> list[Path]:
    """Write ``path`` (JSON) and, with matplotlib, ``path`` with suffix .png; returns what was
    written."""
    write_text_atomic(path, json.dumps(report, indent=2) + "\n")
    written = [path]
    try:
        import matplotlib
    except ImportError:
        return written
    matplotlib.use("Agg")
    written.append(_plot(report, path.with_suffix(".png")))
    return written


def _plot(report: dict, png: Path) -> Path:
    import matplotlib.pyplot as plt

    rows = report["ranking"][:30]
    fallen = set(report.get("budget", {}).get("fallback_layers", []))
    fig, ax = plt.subplots(figsize=(9, 0.28 * len(rows) + 1.6))
    y = range(len(rows))
    ax.barh(
        y,
        [r["matched"] for r in rows],
        color=["#c0392b" if r["layer"] in fallen else "#2c7fb8" for r in rows],
    )
    ax.axvline(report["full_int8"]["matched"], color="k", ls="--", lw=1, label="full INT8")
    if "budget" in report:
        ax.axvline(
            report["budget"]["matched_at_iou_0.9"], color="#c0392b", ls=":", lw=1, label="budget"
        )
    ax.set_yticks(list(y), [r["layer"][-48:] for r in rows], fontsize=7)
    ax.invert_yaxis()
    lo = min([r["matched"] for r in rows] + [report["full_int8"]["matched"]])
    ax.set_xlim(max(0.0, lo - 0.02), 1.0)
    what = (
        "one layer back to FP32, rest INT8"
        if report["mode"] == "exclude"
        else "one layer INT8, rest FP32"
    )
    ax.set_xlabel(f"matched fraction vs FP32 at IoU {report['match_iou']} ({what}); red: fell back")
    ax.set_title(
        f"INT8 sensitivity, most sensitive first ({report['holdout_images']} held-out images)",
        fontsize=9,
    )
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    with atomic_path(png, ".png") as tmp:
        fig.savefig(tmp, dpi=110, format="png", bbox_inches="tight")
    plt.close(fig)
    return png
