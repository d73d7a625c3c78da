"""DESIGN §6 "no silent type change", for every ordered pair of backends.

The edge-value table of ``tests/fidelity.py`` (one value per row) is created natively in the
source and read back natively: that is the source's truth. ``etlrun run`` copies it with
``on_error: reject``; the target is read back natively. Each value must then either

- round-trip exactly (compared by value, per primary key), or
- be rejected: absent from the target and listed in the reject file with its key, column and a
  reason (``REJECTED``), or
- be changed only by a rule the plan flags for that column before anything runs (``COERCED``).

The plan's lossy flags are pinned too (``FLAGS``), so a new loss cannot slip in unnoticed. A new
backend gets the whole matrix by joining ``BACKENDS`` and ``tests/fidelity.NATIVE``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml
from cases import BACKENDS
from conftest import run_cli
from fidelity import (
    BIG_VALUES,
    EDGE_VALUES,
    FILE_FORMATS,
    MARIADB_PACKET,
    create_fidelity,
    packet_bytes,
    read_file_values,
    read_values,
    same,
)
from test_copy_matrix import database, pair, plan_of  # noqa: F401, F811 - a fixture

from runner.plan.types import arrow_from_str

SOURCE, TARGET = "fidelity", "fidelity_copy"


def _significant_digits(value: Decimal) -> int:
    """Without Decimal.normalize, which rounds to the context's 28 digits."""
    return len("".join(map(str, value.as_tuple().digits)).strip("0"))


def rejected(target: str, kind: str, value: Any) -> str | None:
    """The words the reject reason must contain, when ``target`` cannot hold ``value``."""
    if isinstance(value, float) and kind in ("f64", "f32"):
        if target == "mariadb" and not math.isfinite(value):
            return "MariaDB"
        if target == "sqlite" and math.isnan(value):
            return "NaN"
    if target == "mariadb" and packet_bytes(value) > MARIADB_PACKET - 4096:
        return "max_allowed_packet"
    if target == "postgres" and isinstance(value, str) and "\x00" in value:
        return "U+0000"
    if target == "sqlite" and kind == "dec" and _significant_digits(value) > 15:
        return "15 significant digits"
    return None


def _positive_zero(value: Any) -> Any:
    return 0.0 if isinstance(value, float) and value == 0 else value


COERCED: dict[tuple[str, str], tuple[str, Callable[[Any], Any]]] = {
    # MariaDB stores -0.0 as 0: flagged, and the only change allowed
    ("mariadb", "f64"): ("-0.0 is stored as 0", _positive_zero),
    ("mariadb", "f32"): ("-0.0 is stored as 0", _positive_zero),
    # SQLite writes a REAL without fraction as an integer: -0.0 comes back as 0
    ("sqlite", "f64"): ("-0.0 is stored as 0", _positive_zero),
    ("sqlite", "f32"): ("-0.0 is stored as 0", _positive_zero),
}
"""(target, column) -> (words of the plan's flag, the change that flag allows)."""

FLAGS: dict[str, dict[str, str]] = {
    "sqlite": {"dec": "15 significant digits", "f64": "NaN", "f32": "NaN"},
    "duckdb": {},
    "postgres": {"txt": "U+0000"},
    "mariadb": {"f64": "NaN", "f32": "NaN", "tstz": "time zone dropped"},
    "parquet": {},
    "csv": {},
}
"""Per target: columns the plan must flag (beyond the source's own notes), and how."""


def write_spec(
    tmp_path: Path, source: str, target: str, on_error: str = "reject", fmt: str | None = None
) -> Path:
    defaults: dict[str, Any] = {"chunk_rows": 25, "on_error": on_error}
    if fmt:
        defaults["format"] = fmt
    spec = {
        "version": 1,
        "job": "fidelity",
        "source": source,
        "target": target,
        "workers": 2,
        "defaults": defaults,
        "tables": [{"name": SOURCE, "to": TARGET}],
    }
    path = tmp_path / "fidelity.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True))
    return path


def reject_records(cwd: Path) -> dict[int, dict[str, Any]]:
    files = list((cwd / ".etlrun" / "rejects").rglob("*.jsonl"))
    records = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    return {int(r["key"]["id"]): r for r in records}


def check_pair(
    source: str,
    target: str,
    database: Callable[[str, str], str],  # noqa: F811
    tmp_path: Path,
    values: list[tuple[str, str, Any]],
) -> None:
    src = database(source, "source")
    fmt = target if target in FILE_FORMATS else None
    tgt = f"file://{tmp_path}/files/" if fmt else database(target, "target")
    create_fidelity(src, SOURCE, values)
    truth = read_values(src, SOURCE)
    labels = {i + 1: label for i, (_kind, label, _v) in enumerate(values)}
    spec = write_spec(tmp_path, src, tgt, fmt=fmt)

    table = plan_of(spec)
    flagged = {c.name: c.lossy or "" for c in table.columns}
    for column, words in FLAGS[target].items():
        if column in flagged and not (source == target == "postgres" and column == "txt"):
            assert words in flagged[column], f"{column} not flagged '{words}': {flagged[column]!r}"

    want_rejects: dict[int, tuple[str, str]] = {}
    for row_id, row in truth.items():
        for kind, value in row.items():
            reason = None if value is None else rejected(target, kind, value)
            if reason:
                want_rejects[row_id] = (kind, reason)

    result = run_cli("run", spec, cwd=tmp_path)
    expected_code = 3 if want_rejects else 0
    assert result.returncode == expected_code, (
        f"exit {result.returncode}\n{result.stderr[-3000:]}\n{result.stdout[-2000:]}"
    )
    if fmt:
        schema = pa.schema([(c.name, arrow_from_str(c.arrow_type)) for c in table.columns])
        got = read_file_values(f"{tmp_path}/files/{TARGET}.{fmt}", fmt, schema)
    else:
        got = read_values(tgt, TARGET)
    records = reject_records(tmp_path)
    assert set(records) == set(want_rejects), {
        "missing": sorted(labels[i] for i in set(want_rejects) - set(records)),
        "unexpected": sorted(labels[i] for i in set(records) - set(want_rejects)),
    }
    for row_id, (kind, words) in want_rejects.items():
        record = records[row_id]
        assert record["column"] == kind and words in record["reason"], record
        assert "value" not in record
    assert sorted(got) == sorted(set(truth) - set(want_rejects)), "rows missing in the target"

    problems = []
    for row_id in got:
        for kind, value in truth[row_id].items():
            landed = got[row_id].get(kind)
            if (target, kind) in COERCED:
                words, rule = COERCED[(target, kind)]
                assert words in flagged[kind], f"{kind}: coerced but not flagged"
                value = rule(value)
            if not (value is None and landed is None) and not same(value, landed):
                problems.append(f"{labels[row_id]} [{kind}]: {value!r} -> {landed!r}")
    assert not problems, f"{len(problems)} values changed silently:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    ("source", "target"), [pair(s, t) for s in BACKENDS for t in (*BACKENDS, *FILE_FORMATS)]
)
def test_fidelity(
    source: str,
    target: str,
    database: Callable[[str, str], str],  # noqa: F811 - the fixture
    tmp_path: Path,
) -> None:
    check_pair(source, target, database, tmp_path, EDGE_VALUES)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("source", "target"),
    [pair(s, t) for s, t in zip(BACKENDS, (*BACKENDS[1:], BACKENDS[0]), strict=True)],
)
def test_fidelity_16mb(
    source: str,
    target: str,
    database: Callable[[str, str], str],  # noqa: F811 - the fixture
    tmp_path: Path,
) -> None:
    """A 16 MB text and a 16 MB blob, each backend once as source and once as target."""
    check_pair(source, target, database, tmp_path, BIG_VALUES)
