"""Rules of the house that a reviewer would otherwise check by hand."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PYTHON_FILES = [p for p in REPO.rglob("*.py") if not any(part in {".venv", "runs", "cache"} for part in p.parts)]


def test_seg_core_never_imports_streamlit() -> None:
    offenders = []
    for path in (REPO / "seg_core").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            if any(name.split(".")[0] == "streamlit" for name in names):
                offenders.append(str(path.relative_to(REPO)))
    assert offenders == []


def test_nothing_unpickles() -> None:
    offenders = []
    for path in PYTHON_FILES:
        if path.name == "test_house_rules.py":
            continue
        text = path.read_text()
        for match in re.finditer(r"torch\.load\((?P<args>[^)]*)\)", text):
            if "weights_only=True" not in match.group("args"):
                offenders.append(f"{path.name}: torch.load without weights_only=True")
        if re.search(r"^\s*(import pickle|from pickle|import cPickle)", text, re.M) or "allow_pickle=True" in text:
            offenders.append(f"{path.name}: pickle")
    assert offenders == []


def test_weights_are_safetensors_only() -> None:
    weights = REPO / "weights"
    suspicious = [p.name for p in weights.rglob("*") if p.suffix in {".pt", ".pth", ".pkl", ".bin", ".ckpt"}]
    assert suspicious == []
