"""Modules imported on first use.

Importing pyarrow.compute builds a Python function for each of its ~300 kernels (~30 ms), and
the sanitize rules bring it and the keyed-token machinery in. Modules that need them only on
some paths (reject screening of Arrow batches, a job with sanitize rules) name them through a
:class:`LazyModule`, so a job that never decodes a batch (PostgreSQL to PostgreSQL as
undecoded COPY bytes) skips them.
"""

from __future__ import annotations

import importlib
from typing import Any


class LazyModule:
    """Attribute access on the module named ``name``, imported at the first access."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self._name), attr)


pc: Any = LazyModule("pyarrow.compute")
