"""Fail early and by name when a user's own ``handlers`` module shadows d2l-ignite's package.

``engine`` and ``handlers`` are top-level names, so a ``handlers.py`` beside a script (or any
``handlers`` earlier on ``sys.path``) is imported instead of ours and breaks deep inside.
"""
from __future__ import annotations

import importlib.util
import os
import sys

__all__ = ["check_sibling"]


def check_sibling(name: str) -> None:
    """Raise ImportError naming the file when ``name`` is not the package installed beside ``engine``."""
    expected = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), name)
    module = sys.modules.get(name)
    if module is not None:
        origin = getattr(module, "__file__", None)
    else:
        spec = importlib.util.find_spec(name)
        origin = None if spec is None else spec.origin
    if origin is not None and os.path.dirname(os.path.abspath(origin)) == expected:
        return
    raise ImportError(
        f"d2l-ignite's '{name}' package is shadowed by {origin or 'a namespace package'}: a file or folder "
        f"named {name} next to your script (or earlier on sys.path) is imported instead of {expected}. "
        f"Rename yours (e.g. my_{name}.py) and delete its __pycache__"
    )
