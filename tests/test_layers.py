"""The layer rule: pipelines -> models -> imaging. Checked on the source of every module."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

FORBIDDEN = {
    "imaging": ("octoscan.models", "octoscan.pipelines", "torch"),
    "models": ("octoscan.pipelines", "pydicom"),
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_respects_layers(package):
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no modules found under {package}/"
    offenders = []
    for f in files:
        for name in _imports(f):
            if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN[package]):
                offenders.append(f"{f.relative_to(ROOT)} imports {name}")
    assert offenders == []


def test_models_imports_torch_only_lazily():
    """torch may be imported only inside functions (the optional CNN), never at module top."""
    offenders = []
    for f in sorted((ROOT / "models").rglob("*.py")):
        tree = ast.parse(f.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.Import | ast.ImportFrom):
                mod = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
                if mod and (mod == "torch" or mod.startswith("torch.")):
                    offenders.append(str(f.relative_to(ROOT)))
    assert offenders == []
