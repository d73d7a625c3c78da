"""One file per table from chunks that finish in any order (runner/modes/_assemble.py)."""

from __future__ import annotations

import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from runner.connectors.fs import FsConnector, dictionary_columns
from runner.modes._assemble import Assembler, read_part, write_part

SCHEMA = pa.schema([("id", pa.int64()), ("flag", pa.bool_()), ("name", pa.string())])


def chunk(number: int, rows: int = 1_000) -> list[pa.RecordBatch]:
    start = (number - 1) * rows
    ids = pa.array(range(start, start + rows), pa.int64())
    flags = pa.array([i % 3 == 0 for i in range(rows)])
    names = pa.array([f"row {i}" for i in range(start, start + rows)])
    batch = pa.record_batch([ids, flags, names], schema=SCHEMA)
    return [batch.slice(0, rows // 2), batch.slice(rows // 2)]


def make(tmp_path: Path) -> tuple[FsConnector, Assembler]:
    fs = FsConnector(f"file://{tmp_path}/")
    return fs, Assembler(fs, "t.parquet", "parquet", SCHEMA, None)


def finish(fs: FsConnector, into: Assembler) -> pa.Table:
    temp, rows, size, _sha = into.close()
    fs.rename(temp, "t.parquet")
    table = pq.read_table(fs.path("t.parquet"))
    assert table.num_rows == rows and (Path(fs.path("t.parquet")).stat().st_size == size)
    return table


def test_chunks_finishing_out_of_order_land_in_key_order(tmp_path: Path) -> None:
    fs, into = make(tmp_path)
    for number in (3, 1, 4, 2):  # 3 finishes first: it waits in its part file
        write_part(fs, f".p-{number}.arrows", SCHEMA, chunk(number), into, number)
    assert into.complete(4)
    assert finish(fs, into)["id"].to_pylist() == list(range(4_000))


def test_parallel_chunks_assemble_the_whole_table(tmp_path: Path) -> None:
    fs, into = make(tmp_path)
    errors: list[BaseException] = []

    def run(number: int) -> None:
        try:
            write_part(fs, f".p-{number}.arrows", SCHEMA, chunk(number, 5_000), into, number)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(1, 9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and into.complete(8)
    assert finish(fs, into)["id"].to_pylist() == list(range(40_000))


def test_a_chunk_failing_in_turn_breaks_the_file_but_not_its_parts(tmp_path: Path) -> None:
    fs, into = make(tmp_path)

    def failing() -> object:
        yield chunk(1)[0]
        raise RuntimeError("the reader broke")

    with pytest.raises(RuntimeError):
        write_part(fs, ".p-1.arrows", SCHEMA, failing(), into, 1)
    assert into.broken and not fs.exists(".p-1.arrows")
    write_part(fs, ".p-1.arrows", SCHEMA, chunk(1), into, 1)  # the retry: its part only
    write_part(fs, ".p-2.arrows", SCHEMA, chunk(2), into, 2)
    assert not into.complete(2)
    into.discard()
    rows = [b for part in (".p-1.arrows", ".p-2.arrows") for b in read_part(fs, part)]
    assert pa.Table.from_batches(rows)["id"].to_pylist() == list(range(2_000))
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".etlrun")] == []


def test_dictionary_only_where_values_repeat() -> None:
    table = pa.Table.from_batches(chunk(1))
    assert dictionary_columns(table) == ["flag"]


def test_a_chunk_whose_turn_comes_while_it_reads_switches_to_streaming(tmp_path: Path) -> None:
    fs, into = make(tmp_path)
    started, first_done = threading.Event(), threading.Event()
    streamed: list[int] = []
    seen: list[int] = []
    write = into.write

    def spy(batch: pa.RecordBatch) -> None:
        streamed.append(batch.num_rows)
        write(batch)

    into.write = spy  # type: ignore[method-assign]

    def second() -> object:
        head, tail = chunk(2, 1_000)
        yield head  # not its turn: into its part only
        started.set()
        first_done.wait(10)
        yield tail  # its turn now: the part so far goes in, then it streams on
        seen.append(len(streamed))  # before this chunk ends: no wait for the end

    worker = threading.Thread(
        target=write_part, args=(fs, ".p-2.arrows", SCHEMA, second(), into, 2)
    )
    worker.start()
    assert started.wait(10)
    write_part(fs, ".p-1.arrows", SCHEMA, chunk(1), into, 1)
    first_done.set()
    worker.join()
    assert into.complete(2) and seen == [4]
    assert finish(fs, into)["id"].to_pylist() == list(range(2_000))
