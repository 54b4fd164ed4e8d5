"""The user guide (docs/*.md) and the quickstart notebook stay in step with the code.

Running the snippets takes minutes (fits compile), so these tests only check
what can be checked fast: every ``python`` block and notebook code cell
compiles, every ``moseq_xr.<name>`` and ``.moseq.<name>`` they mention exists,
links between pages resolve, and the notebook is stored without outputs.
"""

from __future__ import annotations

import ast
import importlib
import json
import re
from pathlib import Path
from typing import Any

import pytest

from moseq_xr.accessor import MoseqAccessor

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
NOTEBOOK = ROOT / "notebooks" / "quickstart.ipynb"
PAGES = sorted(DOCS.glob("*.md"))

PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
PACKAGE_NAME = re.compile(r"\bmoseq_xr(?:\.[A-Za-z_]\w*)+")
ACCESSOR_NAME = re.compile(r"\.moseq\.([A-Za-z_]\w*)")
MARKDOWN_LINK = re.compile(r"\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*$", re.M)


def _notebook() -> dict[str, Any]:
    return json.loads(NOTEBOOK.read_text())


def _code_cells() -> list[tuple[str, str]]:
    cells = _notebook()["cells"]
    return [
        (f"{NOTEBOOK.name}[cell {i}]", "".join(cell["source"]))
        for i, cell in enumerate(cells)
        if cell["cell_type"] == "code"
    ]


def _snippets() -> list[tuple[str, str]]:
    """``(label, source)`` of every python block of the docs and notebook cell."""
    blocks = [
        (f"{page.name}[block {i}]", block)
        for page in PAGES
        for i, block in enumerate(PYTHON_BLOCK.findall(page.read_text()))
    ]
    return blocks + _code_cells()


def _all_text() -> list[tuple[str, str]]:
    """Every page and every notebook cell, prose included."""
    texts = [(page.name, page.read_text()) for page in PAGES]
    cells = _notebook()["cells"]
    texts += [
        (f"{NOTEBOOK.name}[cell {i}]", "".join(c["source"]))
        for i, c in enumerate(cells)
    ]
    return texts


def resolve(dotted: str) -> object:
    """Import or look up ``moseq_xr.a.b.c``; AttributeError if a part is missing."""
    parts = dotted.split(".")
    found: object = importlib.import_module(parts[0])
    for depth, part in enumerate(parts[1:], start=2):
        if hasattr(found, part):
            found = getattr(found, part)
            continue
        try:
            found = importlib.import_module(".".join(parts[:depth]))
        except ModuleNotFoundError as error:
            raise AttributeError(
                f"{dotted}: no {part!r} in {'.'.join(parts[: depth - 1])}"
            ) from error
    return found


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


SNIPPETS = _snippets()


def test_there_is_something_to_check():
    names = {page.name for page in PAGES}
    assert {
        "index.md",
        "data_contract.md",
        "loading.md",
        "quality.md",
        "fitting.md",
        "results.md",
        "cli.md",
    } <= names
    assert len(SNIPPETS) > 20


@pytest.mark.parametrize(("label", "source"), SNIPPETS, ids=[s[0] for s in SNIPPETS])
def test_snippet_compiles(label: str, source: str):
    compile(source, label, "exec")


@pytest.mark.parametrize(("label", "source"), SNIPPETS, ids=[s[0] for s in SNIPPETS])
def test_snippet_imports_exist(label: str, source: str):
    for node in ast.walk(ast.parse(source, label)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
            "moseq_xr"
        ):
            for alias in node.names:
                resolve(f"{node.module}.{alias.name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("moseq_xr"):
                    resolve(alias.name)


@pytest.mark.parametrize(("label", "source"), SNIPPETS, ids=[s[0] for s in SNIPPETS])
def test_snippet_uses_placeholder_paths(label: str, source: str):
    assert "/work/" not in source and "data/real" not in source, label


def test_package_names_exist():
    missing = sorted(
        f"{label}: {name}"
        for label, text in _all_text()
        for name in set(PACKAGE_NAME.findall(text))
        if not _exists(name)
    )
    assert not missing


def _exists(dotted: str) -> bool:
    try:
        resolve(dotted)
    except AttributeError:
        return False
    return True


def test_accessor_names_exist():
    missing = sorted(
        f"{label}: ds.moseq.{name}"
        for label, text in _all_text()
        for name in set(ACCESSOR_NAME.findall(text))
        if not hasattr(MoseqAccessor, name)
    )
    assert not missing


def test_links_between_pages_resolve():
    anchors = {
        page.name: {_slug(h) for h in HEADING.findall(page.read_text())}
        for page in PAGES
    }
    broken = []
    for page in PAGES:
        for target in MARKDOWN_LINK.findall(page.read_text()):
            if target.startswith(("http://", "https://")):
                continue
            name, _, anchor = target.partition("#")
            name = name or page.name
            if name not in anchors or (anchor and anchor not in anchors[name]):
                broken.append(f"{page.name} -> {target}")
    assert not broken


def test_notebook_is_stored_without_outputs():
    notebook = _notebook()
    assert notebook["nbformat"] == 4
    kinds = {cell["cell_type"] for cell in notebook["cells"]}
    assert kinds == {"markdown", "code"}
    for cell in notebook["cells"]:
        assert set(cell) >= {"cell_type", "metadata", "source"}
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None
