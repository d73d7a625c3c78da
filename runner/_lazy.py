"""pyarrow.compute, imported on first use.

Importing it builds a Python function for each of its ~300 kernels (~30 ms). Modules that
need it only on some paths (reject screening of Arrow batches) name it through :data:`pc`, so
a job that never decodes a batch (PostgreSQL to PostgreSQL as undecoded COPY bytes) skips it.
"""

from __future__ import annotations

from typing import Any


class _Compute:
    def __getattr__(self, name: str) -> Any:
        import pyarrow.compute

        return getattr(pyarrow.compute, name)


pc: Any = _Compute()
