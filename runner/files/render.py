"""A file plan as text for people and as markdown for a pull request (JSON is on the plan)."""

from __future__ import annotations

from runner.execute.progress import human_bytes
from runner.files.plan import FileAction, FilePlan

SHOWN = 200
"""Files listed per action in text; --format json lists every one."""


def _entry(index: int, entry: dict[str, object]) -> str:
    parts = [f"include {', '.join(entry['include'])}"]  # type: ignore[arg-type]
    if entry["exclude"]:
        parts.append(f"exclude {', '.join(entry['exclude'])}")  # type: ignore[arg-type]
    if entry["path"] or entry["to"] is not None:
        parts.append(f"from {entry['path'] or '.'}/ to {entry['to'] or entry['path'] or '.'}/")
    parts.append("recursive" if entry["recursive"] else "top folder only")
    parts.append(f"compare {entry['compare']}")
    delete = f"delete (max {entry['max_delete']})" if entry["max_delete"] is not None else "delete"
    parts.append(delete if entry["delete"] else "no delete")
    return f"  files[{index}]  " + "; ".join(parts)


def summary(plan: FilePlan) -> str:
    """``copy 3 (1.2 MB), update 1 (40 B), delete 2, skip 10 (unchanged 9, locked 1)``."""
    t = plan.totals()
    skip = t["unchanged"]["files"] + t["locked"]["files"]
    return (
        f"copy {t['copy']['files']} ({human_bytes(t['copy']['bytes'])}), "
        f"update {t['update']['files']} ({human_bytes(t['update']['bytes'])}), "
        f"delete {t['delete']['files']}, "
        f"skip {skip} (unchanged {t['unchanged']['files']}, locked {t['locked']['files']})"
    )


def _line(a: FileAction, width: int) -> str:
    name = a.path if a.path == a.target else f"{a.path} -> {a.target}"
    size = human_bytes(a.size) if a.action != "delete" else ""
    return f"  {a.action:<8}{name:<{width}}  {size:>9}  {a.reason}"


def to_text(plan: FilePlan) -> str:
    t = plan.totals()
    lines = [
        f"job {plan.job}  (files, mode {plan.mode}; spec {plan.spec_hash}, "
        f"plan {plan.fingerprint})",
        f"  source  {plan.source}",
        f"  target  {plan.target}",
        *(_entry(i, e) for i, e in enumerate(plan.entries)),
        f"  {len(plan.actions)} files: {summary(plan)}",
        f"  to send: {human_bytes(t['copy']['bytes'] + t['update']['bytes'])} in "
        f"{t['copy']['files'] + t['update']['files']} files, {plan.workers} at a time",
    ]
    listed = [a for a in plan.actions if a.action != "unchanged"]
    width = min(max((len(a.path) for a in listed), default=0), 60)
    for action in ("copy", "update", "delete", "locked"):
        chosen = plan.of(action)
        if not chosen:
            continue
        lines.append("")
        lines += [_line(a, width) for a in chosen[:SHOWN]]
        if len(chosen) > SHOWN:
            lines.append(f"  ... and {len(chosen) - SHOWN} more to {action} (--format json)")
    if plan.temps:
        lines += ["", f"  {len(plan.temps)} temporary file(s) of an interrupted run to remove"]
    if plan.refused:
        lines += ["", "refused (a run exits 6 and changes nothing):"]
        lines += [f"  ! {reason}" for reason in plan.refused]
    return "\n".join(lines) + "\n"


def to_markdown(plan: FilePlan) -> str:
    t = plan.totals()
    lines = [
        f"### job `{plan.job}` (files, {plan.mode})",
        "",
        f"`{plan.source}` → `{plan.target}` · spec `{plan.spec_hash}` · plan `{plan.fingerprint}`",
        "",
        "| action | files | bytes |",
        "|---|--:|--:|",
    ]
    for action in ("copy", "update", "delete", "locked", "unchanged"):
        emphasis = "**" if action == "delete" and t[action]["files"] else ""
        lines.append(
            f"| {emphasis}{action}{emphasis} | {t[action]['files']:,} | "
            f"{human_bytes(t[action]['bytes'])} |"
        )
    deletes = plan.of("delete")
    if deletes:
        lines += ["", "Deletes on the target:", ""]
        lines += [f"- `{a.target}`" for a in deletes[:SHOWN]]
    if plan.refused:
        lines += ["", "**Refused** (a run exits 6 and changes nothing):", ""]
        lines += [f"- {reason}" for reason in plan.refused]
    return "\n".join(lines) + "\n"
