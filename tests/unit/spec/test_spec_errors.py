"""Bad specs, each with the exact ``file:line:col: path: message`` it must produce."""

from __future__ import annotations

import pytest

from runner.errors import SpecError
from runner.spec.load import load_text

HEAD = "source: sqlite:///clinic.db\ntarget: sqlite:///out.db\n"


def headlines(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(SpecError) as caught:
        load_text(text, env=env or {})
    assert caught.value.errors, "a SpecError must carry its issues"
    return [issue.headline() for issue in caught.value.errors]


BILLION_LAUGHS = (
    HEAD
    + "tables: [t]\n"
    + "a: &a [x, x, x, x, x, x, x, x, x]\n"
    + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8)
    )
)

CASES = {
    "unknown key, did you mean": (
        HEAD + "tables:\n  - patients\n  - name: visits\n    chunk_row: 5\n",
        ["<string>:6:5: tables[1].chunk_row: unknown key (did you mean 'chunk_rows'?)"],
    ),
    "unknown key primary_kye": (
        HEAD + "tables:\n  - name: visits\n    primary_kye: [id]\n",
        ["<string>:5:5: tables[0].primary_kye: unknown key (did you mean 'primary_key'?)"],
    ),
    "tables and files in one job": (
        HEAD + "tables: [t]\nfiles: ['*.csv']\n",
        ["<string>:4:8: files: a job moves tables or files, not both (make two jobs)"],
    ),
    "unknown key with nothing close lists the valid keys": (
        HEAD + "tables: [t]\nschedule: {cron: '0 2 * * *', tz: UTC}\n",
        ["<string>:4:31: schedule.tz: unknown key (valid here: cron, timezone, catchup)"],
    ),
    "unknown top-level key and the key it misspells": (
        HEAD + "tabels: [t]\n",
        [
            "<string>:1:1: missing required key 'tables'",
            "<string>:3:1: tabels: unknown key (did you mean 'tables'?)",
        ],
    ),
    "duplicate key": (
        HEAD + "tables:\n  - name: visits\n    mode: copy\n    mode: copy\n",
        ["<string>:6:5: tables[0].mode: duplicate key 'mode' (first at line 5)"],
    ),
    "duplicate top-level key": (
        HEAD + "tables: [a]\nsource: sqlite:///other.db\n",
        ["<string>:4:1: source: duplicate key 'source' (first at line 1)"],
    ),
    "wrong type": (
        HEAD + "workers: abc\ntables: [t]\n",
        ["<string>:3:10: workers: expected an integer, got 'abc'"],
    ),
    "a number where a string is expected": (
        HEAD + "job: 12\ntables: [t]\n",
        ["<string>:3:6: job: expected a string, got 12; quote it if you mean the text ('12')"],
    ),
    "a string where a list is expected": (
        HEAD + "tables:\n  - name: t\n    primary_key: id\n",
        [
            "<string>:5:18: tables[0].primary_key: expected a list, got 'id' (write [id] for a "
            "list of one)"
        ],
    ),
    "negative chunk_rows": (
        HEAD + "defaults:\n  chunk_rows: -5\ntables: [t]\n",
        ["<string>:4:15: defaults.chunk_rows: must be greater than 0"],
    ),
    "too many workers": (
        HEAD + "workers: 1000\ntables: [t]\n",
        ["<string>:3:10: workers: must be at most 256"],
    ),
    "no tables": (
        HEAD + "tables: []\n",
        ["<string>:3:9: tables: must have at least 1 item(s)"],
    ),
    "missing target points at the root": (
        "# a comment first\nsource: sqlite:///a.db\ntables: [t]\n",
        ["<string>:1:1: missing required key 'target'"],
    ),
    "missing name points at the table": (
        HEAD + "tables:\n  - patients\n  - to: visits_copy\n    mode: copy\n",
        ["<string>:5:5: tables[1]: missing required key 'name'"],
    ),
    "unknown mode": (
        HEAD + "tables:\n  - name: t\n    mode: bulkk\n",
        [
            "<string>:5:11: tables[0].mode: unknown mode 'bulkk' (did you mean 'bulk'?); "
            "use one of: copy, incremental, bulk, sync, backup, purge"
        ],
    ),
    "purge without where and backup": (
        HEAD + "defaults:\n  mode: purge\ntables: [t]\n",
        [
            "<string>:1:1: tables[0]: purge needs 'where' (a purge without it would empty the "
            "table); tables[0]: purge needs 'backup' (a file store URL), or 'backup: false' "
            "written out to delete without one"
        ],
    ),
    "literal with did you mean": (
        HEAD + "tables:\n  - name: t\n    if_exists: rep\n",
        [
            "<string>:5:16: tables[0].if_exists: 'rep' is not one of: replace, append, "
            "truncate, fail (did you mean 'replace'?)"
        ],
    ),
    "unsupported version": (
        "version: 2\n" + HEAD + "tables: [t]\n",
        ["<string>:1:10: version: 2 is not one of: 1"],
    ),
    "python tag": (
        HEAD + "tables: [t]\ndescription: !!python/object/apply:os.system [echo pwned]\n",
        [
            "<string>:4:14: description: YAML tag '!!python/object/apply:os.system' is not "
            "allowed; a spec holds plain data (strings, numbers, true/false, lists and mappings)"
        ],
    ),
    "local tag": (
        HEAD + "tables: [!table t]\n",
        [
            "<string>:3:10: tables[0]: YAML tag '!table' is not allowed; a spec holds plain "
            "data (strings, numbers, true/false, lists and mappings)"
        ],
    ),
    "billion laughs": (
        BILLION_LAUGHS,
        [
            "<string>:8:8: e[0]: too many alias expansions: the document grows "
            "past 10,000 values (a 'billion laughs' alias bomb?)"
        ],
    ),
    "recursive alias": (
        HEAD + "tables: &t [t, *t]\n",
        ["<string>:3:16: tables[1]: alias *t refers to itself"],
    ),
    "where with a second statement": (
        HEAD + 'tables:\n  - name: x\n    where: "1=1; DROP TABLE x"\n',
        ["<string>:5:12: tables[0].where: must be one SQL expression; ';' is not allowed"],
    ),
    "where with a comment": (
        HEAD + 'tables:\n  - name: x\n    where: "id > 0 -- and more"\n',
        ["<string>:5:12: tables[0].where: must be one SQL expression; comments are not allowed"],
    ),
    "where that is not a condition": (
        HEAD + "tables:\n  - name: x\n    where: id + 1\n",
        ["<string>:5:12: tables[0].where: must be a condition such as 'amount > 0', not 'id + 1'"],
    ),
    "where read in the source's dialect": (
        "source: postgresql://db/clinic\ntarget: sqlite:///out.db\n"
        'tables:\n  - name: x\n    where: "`id` > 0"\n',
        [
            "<string>:5:12: tables[0].where: not a postgres SQL expression: invalid "
            "expression / Unexpected token at 'id' (character 2)"
        ],
    ),
    "undefined variable": (
        "source: ${CLINIC_URL}\ntarget: sqlite:///out.db\ntables: [t]\n",
        ["<string>:1:9: source: undefined variable ${CLINIC_URL} (set it in the environment)"],
    ),
    "secrets file reference": (
        "source: postgresql://etl:${secret:PG}@db/x\ntarget: sqlite:///out.db\ntables: [t]\n",
        [
            "<string>:1:9: source: ${secret:PG}: no secret 'PG' in .etlrun/secrets.json "
            "(defined: none)"
        ],
    ),
    "malformed reference": (
        HEAD + "description: cost in ${1USD}\ntables: [t]\n",
        [
            "<string>:3:14: description: '${1USD}' is not a variable reference; write ${NAME} "
            "or ${NAME:-default} (NAME: letters, digits and _), or '$${' for a literal '${'"
        ],
    ),
    "plain NO as a value": (
        HEAD + "tables:\n  - name: t\n    to: NO\n",
        [
            "<string>:5:9: tables[0].to: ambiguous YAML value 'NO': YAML 1.1 reads it as a "
            "boolean; quote it ('NO') or write true/false"
        ],
    ),
    "plain on as a key": (
        HEAD + "tables: [t]\non: push\n",
        [
            "<string>:4:1: on: ambiguous YAML value 'on': YAML 1.1 reads it as a boolean; "
            "quote it ('on') or write true/false"
        ],
    ),
    "bad cron": (
        HEAD + 'schedule: "61 * * * *"\ntables: [t]\n',
        [
            "<string>:3:11: schedule: '61 * * * *' is not a valid cron expression "
            "(minute hour day month weekday)"
        ],
    ),
    "schedule of the wrong kind": (
        HEAD + "schedule: [0, 2]\ntables: [t]\n",
        [
            "<string>:3:11: schedule: expected a cron string or a mapping {cron, timezone}, "
            "got a list"
        ],
    ),
    "table of the wrong kind": (
        HEAD + "tables:\n  - 42\n",
        ["<string>:4:5: tables[0]: expected a table name or a mapping (name, mode, ...), got 42"],
    ),
    "bad target type": (
        HEAD + "tables:\n  - name: t\n    types:\n      amount: money(12, 2, x)\n"
        "      id: int; drop table t\n",
        [
            "<string>:6:15: tables[0].types.amount: 'money(12, 2, x)' is not a SQL data type "
            "in sqlite (e.g. integer, varchar(40))",
            "<string>:7:11: tables[0].types.id: must be one SQL type; ';' is not allowed",
        ],
    ),
    "columns and exclude": (
        HEAD + "tables:\n  - name: t\n    columns: [a, b]\n    exclude: [c]\n",
        ["<string>:6:5: tables[0].exclude: 'columns' and 'exclude' cannot both apply to a table"],
    ),
    "columns in defaults, exclude in the table": (
        HEAD + "defaults:\n  columns: [a]\ntables:\n  - name: t\n    exclude: [c]\n",
        [
            "<string>:7:5: tables[0].exclude: 'columns' and 'exclude' cannot both apply to a "
            "table ('columns' comes from defaults:)"
        ],
    ),
    "not a mapping": (
        "- source\n- target\n",
        ["<string>:1:1: expected a mapping of keys (source, target, tables, ...), got a list"],
    ),
    "empty": (
        "# nothing here\n",
        ["<string>:1:1: the spec is empty; a job needs at least source, target and tables"],
    ),
    "syntax error": (
        HEAD + "tables:\n  - name: t\n   mode: copy\n",
        [
            "<string>:5:4: invalid YAML: expected <block end>, but found '<block mapping "
            "start>' (while parsing a block collection at line 4); check the indentation",
        ],
    ),
    "tab indentation": (
        HEAD + "tables:\n\t- t\n",
        [
            "<string>:4:1: invalid YAML: found character '\\t' that cannot start any token "
            "(while scanning for the next token); indent with spaces, not tabs"
        ],
    ),
    "two documents": (
        HEAD + "tables: [t]\n---\nsource: x\n",
        ["<string>:4:1: invalid YAML: a spec is one YAML document, and this starts a second one"],
    ),
    "explicit int tag on text": (
        HEAD + "workers: !!int many\ntables: [t]\n",
        ["<string>:3:10: workers: 'many' is not a valid !!int"],
    ),
}


@pytest.mark.parametrize("text, expected", list(CASES.values()), ids=list(CASES))
def test_bad_spec(text: str, expected: list[str]) -> None:
    assert headlines(text) == expected


def test_every_problem_in_one_pass_in_file_order() -> None:
    text = (
        "source: sqlite:///a.db\n"  # 1
        "target: sqlite:///b.db\n"  # 2
        "workers: many\n"  # 3: wrong type (pydantic)
        "tables:\n"  # 4
        "  - name: visits\n"  # 5
        "    mode: copy\n"  # 6
        "    mode: copy\n"  # 7: duplicate key (YAML)
        "    verify: NO\n"  # 8: ambiguous (YAML)
        "    chunk_row: 5\n"  # 9: unknown key (pydantic)
    )
    assert [h.split(": ")[0] for h in headlines(text)] == [
        "<string>:3:10",
        "<string>:7:5",
        "<string>:8:13",
        "<string>:9:5",
    ]


def test_snippet_has_context_gutter_and_carets() -> None:
    text = HEAD + "tables:\n  - name: visits\n    mode: copy\n    batch_row: 5\n"
    with pytest.raises(SpecError) as caught:
        load_text(text, file="jobs/nightly.yaml", env={})
    assert caught.value.render() == (
        "jobs/nightly.yaml:6:5: tables[0].batch_row: unknown key (did you mean 'batch_rows'?)\n"
        "    4 |   - name: visits\n"
        "    5 |     mode: copy\n"
        "    6 |     batch_row: 5\n"
        "      |     ^^^^^^^^^"
    )


def test_snippet_never_shows_a_url_password() -> None:
    text = "source: postgresql://etl:pa55-in-file@db/x\ntarget: 5\ntables: [t]\n"
    with pytest.raises(SpecError) as caught:
        load_text(text, env={})
    rendered = caught.value.render()
    assert "pa55-in-file" not in rendered
    assert "postgresql://etl:***@db/x" in rendered


def test_issue_fields_are_structured() -> None:
    with pytest.raises(SpecError) as caught:
        load_text(HEAD + "workers: abc\ntables: [t]\n", file="jobs/x.yaml", env={})
    issue = caught.value.errors[0]
    assert (issue.file, issue.line, issue.col, issue.path) == ("jobs/x.yaml", 3, 10, "workers")
    assert issue.message == "expected an integer, got 'abc'"
    assert caught.value.exit_code == 2
