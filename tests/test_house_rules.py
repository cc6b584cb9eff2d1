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


# Modules whose job is to turn bytes into arbitrary Python objects: never in this project.
_PICKLE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal", "copyreg"}


def _dotted(node: ast.AST, aliases: dict[str, str]) -> str:
    """``torch.load`` for ``torch.load`` / ``th.load`` (import torch as th) / ``load`` (from torch import load)."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(aliases.get(node.id, node.id))
        return ".".join(reversed(parts))
    return ""


def unpickling_offences(source: str) -> list[str]:
    """Every way ``source`` could unpickle: pickle-family imports, ``torch.load`` without a literal
    ``weights_only=True`` (or with a ``pickle_module``), ``numpy.load`` with ``allow_pickle`` other than
    a literal False, and pandas' pickle readers. Found on the syntax tree, so strings and comments do not count."""
    tree = ast.parse(source)
    aliases: dict[str, str] = {}
    offences = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                aliases[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else alias.name.split(".")[0]
                if alias.name.split(".")[0] in _PICKLE_MODULES:
                    offences.append(f"line {node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
            if node.module.split(".")[0] in _PICKLE_MODULES:
                offences.append(f"line {node.lineno}: from {node.module} import ...")
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func, aliases)
        keywords = {k.arg: k.value for k in node.keywords if k.arg}
        if name == "torch.load":
            weights_only = keywords.get("weights_only")
            if not (isinstance(weights_only, ast.Constant) and weights_only.value is True) or "pickle_module" in keywords:
                offences.append(f"line {node.lineno}: torch.load without weights_only=True")
        elif name in ("numpy.load", "np.load"):
            allow = keywords.get("allow_pickle")
            if allow is not None and not (isinstance(allow, ast.Constant) and allow.value is False):
                offences.append(f"line {node.lineno}: numpy.load allowing pickles")
        elif name.split(".")[-1] in ("read_pickle", "to_pickle", "Unpickler", "loads_pickle"):
            offences.append(f"line {node.lineno}: {name}")
    return offences


def test_the_unpickling_scan_catches_every_form() -> None:
    caught = [
        "import pickle",
        "import cPickle as p",
        "from joblib import load",
        "import dill.settings",
        "import torch\ntorch.load('x.pt')",
        "import torch as th\nth.load('x.pt', weights_only=False)",
        "from torch import load\nload('x.pt')",
        "import torch\nflag = True\ntorch.load('x.pt', weights_only=flag)",
        "import torch, io\ntorch.load('x.pt', weights_only=True, pickle_module=io)",
        "import numpy as np\nnp.load('x.npy', allow_pickle=True)",
        "import numpy\nnumpy.load('x.npy', allow_pickle=1)",
        "from numpy import load\nload('x.npz', allow_pickle=True)",
        "import pandas as pd\npd.read_pickle('x.pkl')",
    ]
    for source in caught:
        assert unpickling_offences(source), source
    safe = [
        "import torch\ntorch.load('x.pt', weights_only=True, map_location='cpu')",
        "import numpy as np\nnp.load('x.npz')\nnp.load('y.npy', allow_pickle=False)",
        "text = 'torch.load(x) import pickle allow_pickle=True'  # only words",
        "from safetensors.torch import load_file\nload_file('m.safetensors')",
    ]
    for source in safe:
        assert unpickling_offences(source) == [], source


def test_no_code_can_unpickle() -> None:
    offenders = {str(p.relative_to(REPO)): unpickling_offences(p.read_text()) for p in PYTHON_FILES}
    assert {path: found for path, found in offenders.items() if found} == {}
