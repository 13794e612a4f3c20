"""The three dependency tiers, guarded by reading every import statement (top level and lazy).

runtime     edgedet/ outside onnx/ and cli/: numpy, OpenCV, Pillow (+ optional ONNX Runtime,
            TensorRT); imports neither tier below
ONNX tier   edgedet/onnx/: + onnx, ONNX Runtime, TensorRT's builder; never torch or exporters/
CLI         edgedet/cli/: the runtime and the ONNX tier; the torch tier only by name
            (edgedet/cli/main.py's COMMANDS strings), never by import
torch tier  exporters/: may import everything
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TORCH = ("torch", "torchvision", "exporters")


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every import statement in the file, including those inside functions."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module))
    return out


def tier_files(tier: str) -> list[Path]:
    pkg = ROOT / "edgedet"
    if tier == "onnx":
        return sorted((pkg / "onnx").rglob("*.py"))
    if tier == "cli":
        return sorted((pkg / "cli").rglob("*.py"))
    return sorted(
        p for p in pkg.rglob("*.py") if p.relative_to(pkg).parts[0] not in ("onnx", "cli")
    )


def violations(tier: str, forbidden: tuple[str, ...]) -> list[str]:
    bad = []
    for path in tier_files(tier):
        for line, module in imported_modules(path):
            if module.split(".")[0] in forbidden or any(
                module.startswith(f + ".") or module == f for f in forbidden
            ):
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    return bad


@pytest.mark.parametrize(
    "tier, forbidden",
    [
        ("runtime", TORCH + ("edgedet.onnx", "edgedet.cli", "onnx")),
        ("onnx", TORCH + ("edgedet.cli",)),
        ("cli", TORCH),
    ],
)
def test_tier_imports(tier, forbidden):
    assert tier_files(tier), f"no files found for tier {tier}"
    assert violations(tier, forbidden) == []


def test_the_guard_sees_lazy_imports(tmp_path):
    """The reader must catch an import hidden inside a function, or the guard proves nothing."""
    f = tmp_path / "m.py"
    f.write_text("def f():\n    import torch\n    from exporters.pipeline import export\n")
    assert [m for _, m in imported_modules(f)] == ["torch", "exporters.pipeline"]


def test_cli_names_the_torch_tier_commands_it_cannot_import():
    from edgedet.cli.main import COMMANDS

    torch_tier = {name for name, target in COMMANDS.items() if target.startswith("exporters.")}
    assert torch_tier == {"export", "demo"}
