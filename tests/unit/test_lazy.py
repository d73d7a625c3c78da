"""runner._lazy.defer: a submodule that a library imports whole loads at its first use."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from runner._lazy import defer


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    root = tmp_path / "deferpkg"
    root.mkdir()
    (root / "__init__.py").write_text("LOADED = []\n")
    (root / "heavy.py").write_text("import deferpkg\ndeferpkg.LOADED.append('heavy')\nVALUE = 42\n")
    (root / "user.py").write_text(  # a library that imports the submodule whole
        "import deferpkg.heavy\n\ndef use():\n    return deferpkg.heavy.VALUE\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield importlib.import_module("deferpkg")
    for name in [n for n in sys.modules if n == "deferpkg" or n.startswith("deferpkg.")]:
        del sys.modules[name]


def test_a_deferred_submodule_runs_at_its_first_attribute(package) -> None:
    defer("deferpkg.heavy")
    user = importlib.import_module("deferpkg.user")
    assert package.LOADED == []  # `import deferpkg.heavy` bound the stand-in only
    assert user.use() == 42
    assert package.LOADED == ["heavy"]
    real = sys.modules["deferpkg.heavy"]
    assert package.heavy is real and real.VALUE == 42  # the stand-in is replaced everywhere
    assert user.use() == 42 and package.LOADED == ["heavy"]  # and runs once


def test_defer_leaves_imported_and_missing_modules_alone(package) -> None:
    import deferpkg.heavy

    defer("deferpkg.heavy")
    assert sys.modules["deferpkg.heavy"] is deferpkg.heavy and package.LOADED == ["heavy"]
    defer("deferpkg.absent")
    assert "deferpkg.absent" not in sys.modules
    with pytest.raises(ImportError):
        importlib.import_module("deferpkg.absent")
