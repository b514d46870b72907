"""What Python source imports, read with ast (nothing is imported)."""

from __future__ import annotations

import ast


def top_level_imports(tree: ast.AST) -> set[str]:
    """The top-level packages of the absolute imports in ``tree``: ``a`` for ``import a.b`` and
    for ``from a.b import c``."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names
