"""incremental ``strategy: checksum``: each chunk's checksum of the target as of the last run."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from runner.state.tables import chunk_checksums, now


class ChunkChecksums:
    """The chunk checksum methods of :class:`~runner.state.store.StateStore`."""

    engine: Engine
    host: str

    def get_chunk_checksums(self, job: str, table: str) -> tuple[str, list[tuple[Any, ...]]]:
        """(signature, [(lo, hi, rows, sum1, sum2, token, token_xid, parts)] in key order);
        ("", []) when none. ``token`` and ``token_xid`` are None for a chunk without a
        row-version token (and in every chunk of a store from before tokens); ``parts`` (the
        checksums of its sub-ranges, runner/segparts.py) None for a chunk without them."""
        c = chunk_checksums.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(c.signature, c.lo, c.hi, c.rows, c.sum1, c.sum2, c.token, c.token_xid,
                          c.parts)
                .where((c.job == job) & (c.table_name == table))
                .order_by(c.chunk)
            ).all()  # fmt: skip
        if not rows:
            return "", []
        chunks = [
            (json.loads(r[1]), json.loads(r[2]), int(r[3]), int(r[4]), int(r[5]), r[6],
             None if r[7] is None else int(r[7]),
             None if r[8] is None else [tuple(p) for p in json.loads(r[8])])
            for r in rows
        ]  # fmt: skip
        return str(rows[0][0]), chunks

    def set_chunk_checksums(
        self, job: str, table: str, signature: str, chunks: list[tuple[Any, ...]], run_id: str
    ) -> None:
        """Replace the table's chunk checksums; called only after the target commits.

        Each chunk is ``(lo, hi, rows, sum1, sum2)``, optionally followed by ``(token,
        token_xid)`` and then ``parts``."""
        c = chunk_checksums.c
        at = now()
        with self.engine.begin() as conn:
            conn.execute(chunk_checksums.delete().where((c.job == job) & (c.table_name == table)))
            if chunks:
                conn.execute(
                    chunk_checksums.insert(),
                    [
                        {"job": job, "table_name": table, "chunk": i, "signature": signature,
                         "lo": json.dumps(lo), "hi": json.dumps(hi), "rows": rows,
                         "sum1": str(s1), "sum2": str(s2), "run_id": run_id, "updated_at": at,
                         "token": token, "token_xid": xid,
                         "parts": None if parts is None else json.dumps(parts)}
                        for i, (lo, hi, rows, s1, s2, token, xid, parts) in enumerate(
                            (*chunk, None, None, None)[:8] for chunk in chunks
                        )
                    ],
                )  # fmt: skip
