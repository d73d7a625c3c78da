"""The job files ``etlrun schedule`` watches: loaded, reloaded when a file's mtime changes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from loguru import logger

from runner._cron import fires_after, when, zone
from runner.errors import SpecError, SpecIssue
from runner.spec.load import load
from runner.spec.models import Schedule


# --- the job files ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Entry:
    """A job file the scheduler knows: its job name and schedule (None: unscheduled)."""

    path: Path
    job: str
    schedule: Schedule | None

    @property
    def cron(self) -> Schedule:
        assert self.schedule is not None, f"job '{self.job}' has no schedule"
        return self.schedule

    def when(self, t: datetime) -> str:
        return when(t, zone(self.cron))


class Specs:
    """The job specs under ``paths`` (files, or folders of ``*.yaml``/``*.yml``).

    :meth:`refresh` loads the files that are new or whose mtime or size changed. A spec that
    becomes invalid is logged at file:line and keeps its last good schedule, so a half-saved
    edit does not silently stop a nightly job: its runs then fail with exit 2, in the log,
    until the file is fixed. A deleted file drops its job.
    """

    def __init__(self, paths: Sequence[str | Path]) -> None:
        self.paths = [Path(p) for p in paths]
        self.entries: dict[Path, Entry] = {}
        self.errors: dict[Path, list[SpecIssue]] = {}
        self._stamps: dict[Path, tuple[int, int]] = {}

    def files(self) -> list[Path]:
        found: list[Path] = []
        for path in self.paths:
            if path.is_dir():  # connections.yaml beside the jobs is no job (runner.gitops)
                from runner.gitops import is_spec

                found += sorted(p for p in path.rglob("*.y*ml") if is_spec(p) and p.is_file())
            elif path.is_file():
                found.append(path)
        return list(dict.fromkeys(found))

    def refresh(self) -> list[Path]:
        """Reload what changed on disk; returns the files whose entry may have changed."""
        files = self.files()
        changed = [p for p in self._stamps if p not in files]
        for gone in changed:
            del self._stamps[gone]
            self.errors.pop(gone, None)
            if self.entries.pop(gone, None):
                logger.info(f"{gone}: removed")
        for path in files:
            try:
                st = path.stat()
            except OSError:
                continue
            if self._stamps.get(path) != (st.st_mtime_ns, st.st_size):
                self._stamps[path] = (st.st_mtime_ns, st.st_size)
                self._load(path)
                changed.append(path)
        return changed

    def scheduled(self) -> list[Entry]:
        return [e for e in self.entries.values() if e.schedule is not None]

    def _load(self, path: Path) -> None:
        try:
            job = load(path)
        except SpecError as exc:
            self.errors[path] = exc.errors
            for issue in exc.errors:
                logger.error(issue.headline())
            kept = self.entries.get(path)
            if kept is not None and kept.schedule is not None:
                cron = kept.schedule.cron
                logger.error(
                    f"{path}: invalid; keeping its last good schedule '{cron}' until fixed"
                )
            else:
                logger.error(f"{path}: invalid; not scheduled until it is fixed")
            return
        self.errors.pop(path, None)
        schedule = job.schedule
        if schedule and next(fires_after(schedule, datetime.now(UTC)), None) is None:
            logger.error(f"{path}: schedule '{schedule.cron}' never fires; not scheduled")
            schedule = None
        self.entries[path] = Entry(path, job.name, schedule)
        twins = [str(e.path) for e in self.scheduled() if e.job == job.name and e.path != path]
        if twins and schedule:
            logger.warning(f"{path}: job '{job.name}' is also in {', '.join(twins)} (one lock)")
