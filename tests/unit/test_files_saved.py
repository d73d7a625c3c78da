"""A file job's saved plan against a fresh one (no I/O): what makes it stale, what an
interrupted apply already did, and the round trip through JSON."""

from __future__ import annotations

from runner.files.plan import FileAction, FilePlan
from runner.files.saved import LISTED, differences, done_by, listing, to_run
from runner.state.runs import Resume


def plan(*actions: FileAction, temps: list[str] | None = None) -> FilePlan:
    return FilePlan("j", "sync", "file:///s", "file:///t", "h", 2, [], list(actions), [],
                    temps or [])  # fmt: skip


def act(action: str, path: str, size: int = 10, mtime: float = 1.0, etag: str | None = None):  # type: ignore[no-untyped-def]
    return FileAction(action, path, path, size, "why", 0, mtime, etag=etag)


SAVED = plan(act("copy", "a"), act("update", "b", etag="e1"), act("delete", "c"),
             act("unchanged", "d"))  # fmt: skip


def test_a_plan_that_still_holds() -> None:
    fresh = plan(act("copy", "a"), act("update", "b", etag="e1"), act("delete", "c"),
                 act("update", "d"), act("copy", "new"))  # fmt: skip
    assert differences(SAVED, fresh, set()) == []  # d and new: not in the plan, left alone
    # the target file of a planned delete is gone already: nothing to delete, not stale
    assert differences(SAVED, plan(act("copy", "a"), act("update", "b", etag="e1")), set()) == []


def test_what_makes_it_stale() -> None:
    fresh = plan(act("unchanged", "a"), act("update", "b", etag="e2"), act("delete", "c", size=3))
    assert differences(SAVED, fresh, set()) == [
        "a: planned to copy; already in sync (another run copied it)",
        "b: planned to update; changed since the plan (ETag e1 -> e2)",
        "c: planned to delete; its size on the target changed (10 -> 3 bytes)",
    ]
    fresh = plan(act("locked", "a"), act("update", "b", size=11, mtime=2.0, etag="e1"),
                 act("copy", "c"))  # fmt: skip
    assert differences(SAVED, fresh, set()) == [
        "a: planned to copy; locked since the plan",
        "b: planned to update; changed since the plan (size 10 -> 11 bytes, mtime 1.0 -> 2.0)",
        "c: planned to delete; its source file is back (a run would now copy it)",
    ]
    assert differences(SAVED, plan(act("delete", "c")), set())[:2] == [
        "a: planned to copy; gone from the source",
        "b: planned to update; gone from the source",
    ]


def test_an_interrupted_apply_resumes() -> None:
    resume = Resume("r1", "{}", {"copy:a": {"kind": "file"}, "delete:c": {"kind": "file"}})
    done = done_by(resume)
    assert done == {"a"}
    fresh = plan(act("unchanged", "a"), act("update", "b", etag="e1"), act("delete", "c"),
                 temps=[".etlrun-tmp-x"])  # fmt: skip
    assert differences(SAVED, fresh, done) == []
    running = to_run(SAVED, fresh, done)
    assert [(a.action, a.path) for a in running.actions] == [
        ("unchanged", "a"), ("update", "b"), ("delete", "c"), ("unchanged", "d"),
    ]  # fmt: skip
    assert running.temps == [".etlrun-tmp-x"]
    assert done_by(None) == set()


def test_round_trip_and_listing() -> None:
    again = FilePlan.from_dict(SAVED.to_dict())
    assert again.to_json() == SAVED.to_json() and again.fingerprint == SAVED.fingerprint
    many = [f"f{i}" for i in range(LISTED + 7)]
    assert listing(many)[-1] == "... and 7 more file(s)" and len(listing(many)) == LISTED + 1
