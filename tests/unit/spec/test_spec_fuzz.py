"""Whatever a user does to a spec, loading it gives a Job or a positioned SpecError: no crash."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.errors import SpecError
from runner.spec.load import load_text

VALID = """\
version: 1
job: nightly
description: Clinic database to the analytics store
source: ${CLINIC_URL:-sqlite:///demo/clinic.db}
target: ${ANALYTICS_URL:-duckdb:///demo/analytics.duckdb}
schedule: {cron: "0 2 * * *", timezone: Europe/Oslo}
workers: 4
defaults: &defaults
  mode: copy
  chunk_rows: 10000
tables:
  - patients
  - name: visits
    <<: *defaults
    to: visits_copy
    where: "visit_date >= '2024-01-01' AND cost > 10"
    columns: [id, patient_id, visit_date]
    types:
      cost: "DECIMAL(12,2)"
    primary_key: [id]
    if_exists: append
  - name: lab_results
    exclude: [notes]
    verify: count
"""
LINES = VALID.splitlines()
FILE = "/nonexistent-etlrun-fuzz/jobs/fuzz.yaml"

NASTY = [
    "yes",
    "NO",
    "~",
    "null",
    "-1",
    "0",
    "0755",
    "1e999",
    "9" * 50,
    ".nan",
    "true",
    "${X}",
    "${",
    "$${",
    "${X:-}",
    "${secret:K}",
    "&a",
    "*a",
    "*defaults",
    "&b [*b]",
    "!!python/object/apply:os.system",
    "!!int",
    "!!binary",
    "!local",
    "<<",
    "? ",
    "- ",
    "[",
    "]",
    "{",
    "}",
    ":",
    ",",
    "|",
    ">",
    "#",
    "'",
    '"',
    "%YAML 1.1",
    "---",
    "...",
    "\t",
    "@",
    "`",
    "\\",
    ";",
    "--",
    "/*",
    "DROP TABLE x",
    "ééé",
    "\u2028",
]
PUNCTUATION = list("[]{}:,-?|>#&*!%@`'\"\\\t") + ["\n", " - ", ": ", "<<: "]


@st.composite
def mutated(draw: st.DrawFn) -> str:
    lines = list(LINES)
    for _ in range(draw(st.integers(1, 4))):
        if not lines:
            lines.append("")
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["delete", "duplicate", "indent", "token", "punctuate"]))
        if op == "delete":
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "indent":
            shift = draw(st.integers(-4, 4))
            line = lines[i]
            lines[i] = " " * shift + line if shift > 0 else line[min(-shift, len(line)) :]
        elif op == "token":
            tokens = lines[i].split(" ")
            j = draw(st.integers(0, len(tokens) - 1))
            tokens[j] = draw(
                st.one_of(
                    st.sampled_from(NASTY),
                    st.text(max_size=8),
                    st.integers().map(str),
                    st.floats().map(str),
                )
            )
            lines[i] = " ".join(tokens)
        else:
            at = draw(st.integers(0, len(lines[i])))
            lines[i] = lines[i][:at] + draw(st.sampled_from(PUNCTUATION)) + lines[i][at:]
    return "\n".join(lines) + "\n"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_spec_loads_or_fails_with_positions(text: str) -> None:
    try:
        # a folder that does not exist: no developer's .env can take part
        load_text(text, file=FILE, env={})
    except SpecError as exc:
        assert exc.errors
        for issue in exc.errors:
            assert issue.line >= 1 and issue.col >= 1, issue
            assert issue.file == FILE, issue
            assert issue.message and issue.render()


def test_the_unmutated_spec_is_valid() -> None:
    job = load_text(VALID, env={})
    assert job.tables[1].chunk_rows == 10000
