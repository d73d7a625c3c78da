"""A plan as text for people, and as a mermaid graph; JSON lives on :class:`Plan` itself."""

from __future__ import annotations

import re

from runner.execute.progress import human_bytes
from runner.plan.plan import Plan, TablePlan
from runner.sanitize._plan import report_text
from runner.secrets import mask_url


def _range(lo: object, hi: object) -> str:
    return f"({'-inf' if lo is None else lo}, {'+inf' if hi is None else hi}]"


def to_text(plan: Plan) -> str:
    lines = [
        f"job {plan.job}  (spec {plan.spec_hash}, plan {plan.fingerprint})",
        f"  source  {plan.source}  [{plan.source_dialect}]",
        f"  target  {plan.target}  [{plan.target_dialect}]",
        f"  {_n(len(plan.tables), 'table')}, {_n(len(plan.tasks), 'task')}, "
        f"{_n(plan.workers, 'worker')}, "
        f"~{sum(t.rows for t in plan.tables):,} rows, "
        f"~{human_bytes(sum(t.bytes for t in plan.tables))}",
    ]
    for table in plan.tables:
        lines += ["", *_table_text(table, plan)]
    lossy = [(t.target, c) for t in plan.tables for c in t.columns if c.lossy]
    lines += ["", f"lossy casts: {len(lossy)}"]
    lines += [
        f"  ! {table}.{c.name}: {c.source_type} -> {c.target_type}: {c.lossy}" for table, c in lossy
    ]
    return "\n".join(lines) + "\n"


def _table_text(table: TablePlan, plan: Plan) -> list[str]:
    action = "replace" if table.target_exists else "create"
    if table.options.get("if_exists") in ("append", "truncate") and table.target_exists:
        action = table.options["if_exists"]
    if table.mode == "incremental" and table.target_exists:
        action = "merge"
    if table.mode == "purge":
        action = "delete"
    lines = [
        f"table {table.source} -> {table.target}  [{table.mode}, {action}]",
        f"  ~{table.rows:,} rows, ~{human_bytes(table.bytes)}, "
        f"key {table.key or '(none: one chunk)'}, "
        f"{len(table.chunks)} chunk{'s' if len(table.chunks) != 1 else ''}",
        "  columns:",
    ]
    width = max((len(c.name) for c in table.columns), default=4)
    for c in table.columns:
        flag = f"   ! {c.lossy}" if c.lossy else ""
        lines.append(
            f"    {c.name:<{width}}  {c.source_type} -> {c.arrow_type} -> {c.target_type}{flag}"
        )
    if table.mode == "incremental" and table.options.get("strategy") == "checksum":
        o = table.options
        stored = o.get("stored_chunks") or 0
        tokens = o.get("stored_tokens") or 0
        held = f" ({tokens} with row-version tokens: skipped unless written)" if tokens else ""
        lines.append(
            f"  checksum ({o['hash']} hash): {stored} chunk checksum(s) stored{held}; "
            + ("the source's are compared with them at run time, changed chunks bisected "
               "against the target" if stored and not o.get("first") else
               "none usable: every chunk is compared with the target" if not o.get("first")
               else "first run: a copy, then the target's chunk checksums are stored")
        )  # fmt: skip
    elif table.mode == "incremental":  # what a run reads, and what it will save after merging
        o = table.options
        start = "(unset: every row)" if o["watermark_from"] is None else o["watermark_from"]
        back = f", reading from {o['read_from']}" if o["read_from"] != o["watermark_from"] else ""
        to = "(no cursor value: stays)" if o["watermark_to"] is None else o["watermark_to"]
        guessed = ""
        if o.get("watermark_read"):
            to = "(the largest value the run reads, taken from staging after one read)"
            guessed = " (the planner's estimate: not counted)"
        lines.append(f"  watermark {o['cursor']}: {start} -> {to}{back}")
        lines.append(
            f"  ~{table.rows:,} rows{guessed} to insert or update, merged by "
            f"{', '.join(o['merge_key'])}; NULL cursors re-read"
        )
    if table.mode == "purge":
        o = table.options
        backup = "none (backup: false)" if o["backup"] is False else mask_url(o["backup"])
        lines.append(
            f"  ~{o['matching_rows']:,} of {o['table_rows']:,} rows match; backup {backup}; "
            f"guard {o['guard'] or 'none'}"
        )
    sanitize = table.options.get("sanitize")
    if sanitize:  # column -> Safe Harbor class -> rule, for every column the table has
        lines += report_text(sanitize["columns"], sanitize.get("profile"))
    lines.append("  tasks:")
    for task in (t for t in plan.tasks if t.table == table.target):
        deps = [d for d in task.deps if not d.startswith(f"{table.target}:")]
        after = f"  (after {', '.join(deps)})" if deps else ""
        if task.kind == "chunk":
            lo, hi = task.params["bounds"]
            lines.append(
                f"    {task.id}  {table.key or ''} in {_range(lo, hi)}  ~{task.rows:,} rows{after}"
            )
        else:
            lines.append(f"    {task.id}{after}")
    for step, statements in table.sql.items():
        lines.append(
            f"  sql {step} [{plan.source_dialect if step == 'read' else plan.target_dialect}]:"
        )
        shown = (
            statements
            if len(statements) <= 3
            else (*statements[:2], f"... {len(statements) - 3} more", statements[-1])
        )
        for statement in shown:
            lines += [f"    {line}" for line in statement.splitlines()]
    return lines


def _node(task_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", task_id)


def to_mermaid(plan: Plan) -> str:
    lines = ["flowchart LR"]
    for table in plan.tables:
        lines.append(f'  subgraph {_node(table.target)}_g["{table.source} -> {table.target}"]')
        for task in (t for t in plan.tasks if t.table == table.target):
            label = task.kind if task.kind != "chunk" else f"chunk {task.params['chunk']}"
            lines.append(f'    {_node(task.id)}["{label}"]')
        lines.append("  end")
    for task in plan.tasks:
        lines += [f"  {_node(dep)} --> {_node(task.id)}" for dep in task.deps]
    return "\n".join(lines) + "\n"


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def to_markdown(plans: list[Plan]) -> str:
    """A summary of one or more plans for a pull-request comment (GitHub-flavoured markdown):
    per job its tables, mode, action, rows to move, rows/files to delete, DDL, lossy casts and
    sanitize rules."""
    total = sum(t.rows for p in plans for t in p.tables)
    lines = [
        f"## etlrun plan: {_n(len(plans), 'job')}, "
        f"{_n(sum(len(p.tables) for p in plans), 'table')}, ~{total:,} rows",
    ]
    for plan in plans:
        lines += [
            "",
            f"### job `{plan.job}`",
            "",
            f"`{plan.source}` [{plan.source_dialect}] → `{plan.target}` [{plan.target_dialect}]"
            f" · spec `{plan.spec_hash}` · plan `{plan.fingerprint}`",
            "",
            "| table | target | mode | action | rows | size | chunks | deletes |",
            "|---|---|---|---|--:|--:|--:|---|",
        ]
        for table in plan.tables:
            action = _action(table)
            if action == "replace":
                action = "**replace** (existing rows are replaced)"
            lines.append(
                f"| `{table.source}` | `{table.target}` | {table.mode} | {action} | "
                f"{table.rows:,} | {human_bytes(table.bytes)} | {len(table.chunks)} | "
                f"{_deletes(table, plan)} |"
            )
        lossy = [(t.target, c) for t in plan.tables for c in t.columns if c.lossy]
        if lossy:
            lines += ["", f"**Lossy casts: {len(lossy)}**", ""]
            lines += [
                f"- `{table}.{c.name}`: `{c.source_type}` → `{c.target_type}`: {c.lossy}"
                for table, c in lossy
            ]
        rules = [
            (t.target, e)
            for t in plan.tables
            for e in (t.options.get("sanitize") or {}).get("columns", [])
            if e.get("rule")
        ]
        if rules:
            lines += ["", "Sanitize rules:", ""]
            lines += [f"- `{table}.{e['column']}`: {e['rule']}" for table, e in rules]
        ddl = [
            statement
            for t in plan.tables
            for step in ("job before", "before", "prepare", "finalize", "after", "job after")
            for statement in t.sql.get(step, ())
        ]
        if ddl:
            lines += ["", "<details><summary>SQL steps and DDL</summary>", "", "```sql"]
            lines += [s.rstrip().rstrip(";") + ";" for s in ddl]
            lines += ["```", "", "</details>"]
    return "\n".join(lines) + "\n"


def _action(table: TablePlan) -> str:
    if table.mode == "purge":
        return "delete"
    if table.mode == "backup":
        return "write files"
    if table.mode in ("incremental", "sync") and table.target_exists:
        return "merge"
    action = "replace" if table.target_exists else "create"
    if table.options.get("if_exists") in ("append", "truncate") and table.target_exists:
        action = table.options["if_exists"]
    return action


def _deletes(table: TablePlan, plan: Plan) -> str:
    """What a run of ``table`` deletes or drops, as far as the plan can know it, in bold."""
    o = table.options
    if table.mode == "purge":
        backup = f"backed up to `{o['backup']}` first" if o.get("backup") else "**no backup**"
        return f"**{o.get('matching_rows', table.rows):,} rows** matching `{o['where']}`, {backup}"
    if table.mode == "sync" and table.target_exists:
        if not o.get("delete", True):
            return "none (`delete: false`)"
        limits = []
        if o.get("max_delete") is not None:
            limits.append(f"{o['max_delete']:,} rows")
        if o.get("max_delete_pct") is not None:
            limits.append(f"{o['max_delete_pct']:g}%")
        refuse = f"; refused above {' or '.join(limits)}" if limits else ""
        return f"**target rows the source no longer has** (counted at run time{refuse})"
    if table.mode == "backup":
        manifest = next((t for t in plan.tasks if t.kind == "manifest"), None)
        keep = manifest.params.get("keep") if manifest is not None else None
        if keep:
            return f"**files of backups older than the newest {keep}** (after this one verifies)"
        return "none"
    if table.mode == "bulk" and table.target_exists:
        keep = o.get("keep_backups", 1)
        if not keep:
            return "**the current target table** (`keep_backups: 0`)"
        return f"**`{table.target}__prev_*` tables beyond the newest {keep}**"
    if table.mode == "copy" and table.target_exists:
        how = o.get("if_exists", "replace")
        if how == "replace":
            return "**every existing target row** (replaced in one swap)"
        if how == "truncate":
            return "**every existing target row** (truncated, then loaded)"
    return "none"
