"""The modes a table can move in, by name. A mode is one module with ``compile`` and task bodies."""

from __future__ import annotations

import importlib
from types import ModuleType

MODES: dict[str, str] = {
    "copy": "runner.modes.copy",
    "incremental": "runner.modes.incremental",
    "bulk": "runner.modes.bulk",
    "sync": "runner.modes.sync",
    "backup": "runner.modes.backup",
    "purge": "runner.modes.purge",
}
"""Available modes -> module. A mode of DESIGN §3 missing here is 'not available yet'."""


def mode_module(name: str) -> ModuleType:
    return importlib.import_module(MODES[name])
