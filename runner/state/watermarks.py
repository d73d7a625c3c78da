"""What incremental remembers between runs: the cursor watermark of each table of a job."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from runner.state.tables import now, watermarks


class Watermarks:
    """The watermark methods of :class:`~runner.state.store.StateStore`."""

    engine: Engine
    host: str

    def get_watermark(self, job: str, table: str) -> tuple[Any, str] | None:
        """The (value, type) saved for ``table`` of ``job``, or None when unset. The value comes
        back as it was saved (JSON: ints stay ints, a composite cursor is a list)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(watermarks.c.value, watermarks.c.value_type).where(
                    (watermarks.c.job == job) & (watermarks.c.table_name == table)
                )
            ).first()
        if row is None or row[0] is None:
            return None
        return json.loads(row[0]), str(row[1])

    def set_watermark(self, job: str, table: str, value: Any, value_type: str, run_id: str) -> None:
        """Save the watermark; called only after the target commit of the rows it covers."""
        key = (watermarks.c.job == job) & (watermarks.c.table_name == table)
        with self.engine.begin() as conn:
            conn.execute(watermarks.delete().where(key))
            conn.execute(
                watermarks.insert().values(
                    job=job,
                    table_name=table,
                    value=json.dumps(value),
                    value_type=value_type,
                    run_id=run_id,
                    updated_at=now(),
                )
            )
