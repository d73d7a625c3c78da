"""Modules imported on first use.

Importing pyarrow.compute builds a Python function for each of its ~300 kernels (~30 ms), and
the sanitize rules bring it and the keyed-token machinery in. Modules that need them only on
some paths (reject screening of Arrow batches, a job with sanitize rules) name them through a
:class:`LazyModule`, so a job that never decodes a batch (PostgreSQL to PostgreSQL as
undecoded COPY bytes) skips them.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types
from typing import Any


class LazyModule:
    """Attribute access on the module named ``name``, imported at the first access."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self._name), attr)


pc: Any = LazyModule("pyarrow.compute")
_DEFER_LOCK = threading.Lock()


def defer(name: str) -> None:
    """Let ``import name`` (a submodule of an imported package) bind a stand-in that imports
    the module at its first attribute lookup, for a library that imports it whole and uses it
    on a path etlrun never takes. A no-op once it is imported or when it is not installed.
    (:class:`importlib.util.LazyLoader` loads on any attribute lookup, and ``import a.b``
    itself reads ``a.b.__spec__``.)"""
    with _DEFER_LOCK:  # chunk threads open their first connections at once
        if name not in sys.modules and importlib.util.find_spec(name) is not None:
            parent, _, child = name.rpartition(".")
            stand_in = _Deferred(name)
            sys.modules[name] = stand_in
            setattr(sys.modules[parent], child, stand_in)


class _Deferred(types.ModuleType):
    """A module not imported yet (:func:`defer`)."""

    def __getattr__(self, attr: str) -> Any:  # only names the stand-in lacks: all of them
        with _DEFER_LOCK:
            if sys.modules.get(self.__name__) is self:
                del sys.modules[self.__name__]  # the real import then replaces it, parent too
        return getattr(importlib.import_module(self.__name__), attr)
