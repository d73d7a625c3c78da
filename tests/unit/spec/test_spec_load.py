"""What a valid spec becomes: scalars, shorthands, variables, .env, defaults, secrets, paths."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from loguru import logger

from runner import secrets
from runner.errors import SpecError
from runner.spec._yaml import resolve_plain
from runner.spec.load import load, load_text, validate_paths
from runner.spec.models import DEFAULTS

HEAD = "source: sqlite:///clinic.db\ntarget: sqlite:///out.db\n"


@pytest.fixture
def logged() -> Iterator[list[str]]:
    messages: list[str] = []
    sink = logger.add(lambda m: messages.append(m.record["message"]), level="WARNING")
    yield messages
    logger.remove(sink)


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# --- scalars: YAML 1.2 core schema ---------------------------------------------------------------
@pytest.mark.parametrize(
    "text, value",
    [
        ("12", 12),
        ("-3", -3),
        ("0", 0),
        ("0755", "0755"),
        ("0x1F", "0x1F"),
        ("1_000", "1_000"),
        ("1.5", 1.5),
        ("1e3", 1000.0),
        ("true", True),
        ("FALSE", False),
        ("True", True),
        ("null", None),
        ("~", None),
        ("", None),
        ("2024-01-01", "2024-01-01"),
        ("12:30:00", "12:30:00"),
        ("nightly", "nightly"),
        ("9" * 5000, "9" * 5000),
    ],
)
def test_plain_scalars_follow_yaml_1_2(text: str, value: object) -> None:
    assert resolve_plain(text) == value
    assert type(resolve_plain(text)) is type(value)


def test_octal_looking_and_date_values_stay_strings() -> None:
    job = load_text(HEAD + "job: 2024-01-01\ndescription: 0755\ntables: [0755, 2024-01-01]\n")
    assert job.job == "2024-01-01"
    assert job.description == "0755"
    assert [t.name for t in job.tables] == ["0755", "2024-01-01"]


def test_quoted_yes_and_no_are_strings() -> None:
    job = load_text(HEAD + "tables:\n  - name: 'yes'\n    to: \"NO\"\n", env={})
    assert (job.tables[0].name, job.tables[0].to) == ("yes", "NO")


def test_merge_keys_and_aliases() -> None:
    text = HEAD + (
        "defaults: &base\n  chunk_rows: 500\n  if_exists: append\n"
        "tables:\n  - name: a\n    <<: *base\n    chunk_rows: 7\n  - name: b\n    <<: *base\n"
    )
    job = load_text(text, env={})
    assert (job.tables[0].chunk_rows, job.tables[0].if_exists) == (7, "append")
    assert (job.tables[1].chunk_rows, job.tables[1].if_exists) == (500, "append")


# --- shorthands and defaults ---------------------------------------------------------------------
def test_tables_and_schedule_shorthand() -> None:
    job = load_text(HEAD + "schedule: '0 2 * * *'\ntables:\n  - patients\n  - name: visits\n")
    assert [t.name for t in job.tables] == ["patients", "visits"]
    assert job.schedule is not None
    assert (job.schedule.cron, job.schedule.timezone) == ("0 2 * * *", "UTC")


def test_resolve_layers_table_over_defaults_over_builtins() -> None:
    text = HEAD + (
        "defaults:\n  chunk_rows: 500\n  if_exists: append\n"
        "tables:\n  - name: a\n    chunk_rows: 7\n  - b\n"
    )
    job = load_text(text, env={})
    a, b = (job.resolve(t) for t in job.tables)
    assert (a.chunk_rows, a.if_exists, a.verify) == (7, "append", DEFAULTS.verify)
    assert (b.chunk_rows, b.if_exists, b.mode) == (500, "append", DEFAULTS.mode)
    assert (a.name, b.name) == ("a", "b")


def test_resolve_keeps_a_where_valid_only_in_the_source_dialect() -> None:
    text = "source: mysql://db/shop\ntarget: sqlite:///o.db\ntables:\n  - name: t\n"
    job = load_text(text + "    where: '`id` > 10'\n", env={})
    assert job.resolve(job.tables[0]).where == "`id` > 10"


def test_job_name_defaults_to_the_file_stem(tmp_path: Path) -> None:
    named = write(tmp_path, "named.yaml", HEAD + "job: explicit\ntables: [t]\n")
    unnamed = write(tmp_path, "nightly.yaml", HEAD + "tables: [t]\n")
    assert load(named, env={}).name == "explicit"
    assert load(unnamed, env={}).job == "nightly"
    assert load_text(HEAD + "tables: [t]\n", env={}).job is None


# --- ${VAR} and .env -----------------------------------------------------------------------------
def test_variables_and_defaults() -> None:
    text = (
        "source: ${SRC}\ntarget: ${DST:-sqlite:///fallback.db}\n"
        "description: ${EMPTY:-was empty} / $${LITERAL} / ${SRC}\ntables: [t]\n"
    )
    job = load_text(text, env={"SRC": "sqlite:///in.db", "EMPTY": ""})
    assert job.source == "sqlite:///in.db"
    assert job.target == "sqlite:///fallback.db"
    assert job.description == "was empty / ${LITERAL} / sqlite:///in.db"


def test_variables_fill_typed_fields() -> None:
    job = load_text(HEAD + "workers: ${WORKERS:-3}\ntables: [t]\n", env={})
    assert job.workers == 3


def test_dotenv_beside_the_job_and_the_environment_wins(tmp_path: Path) -> None:
    write(
        tmp_path,
        "jobs/.env",
        "# connection\nexport SRC=sqlite:///from-dotenv.db\n"
        "DST='sqlite:///quoted.db'  # a comment\nDESC=\"two words\"\n\n",
    )
    spec = write(
        tmp_path,
        "jobs/n.yaml",
        "source: ${SRC}\ntarget: ${DST}\ndescription: ${DESC}\ntables: [t]\n",
    )
    job = load(spec, env={"SRC": "sqlite:///from-env.db"})
    assert job.source == "sqlite:///from-env.db"
    assert job.target == "sqlite:///quoted.db"
    assert job.description == "two words"


def test_undefined_variable_names_the_dotenv_path(tmp_path: Path) -> None:
    spec = write(tmp_path, "jobs/n.yaml", "source: ${CLINIC_URL}\ntarget: x\ntables: [t]\n")
    with pytest.raises(SpecError) as caught:
        load(spec, env={})
    assert caught.value.errors[0].headline() == (
        f"{spec}:1:9: source: undefined variable ${{CLINIC_URL}} "
        f"(set it in the environment or in {tmp_path / 'jobs' / '.env'})"
    )


def test_malformed_dotenv_line_is_an_issue_without_its_text(tmp_path: Path) -> None:
    write(tmp_path, ".env", "GOOD=1\nPASSWORD hunter2-leaked\n")
    spec = write(tmp_path, "n.yaml", HEAD + "description: ${GOOD}\ntables: [t]\n")
    with pytest.raises(SpecError) as caught:
        load(spec, env={})
    (issue,) = caught.value.errors
    assert issue.headline() == (
        f"{tmp_path / '.env'}:2:1: expected KEY=VALUE (KEY: letters, digits and _)"
    )
    assert "hunter2-leaked" not in issue.render()


def test_dotenv_is_not_read_unless_a_variable_needs_it(tmp_path: Path) -> None:
    write(tmp_path, ".env", "this is not a dotenv file\n")
    assert load(write(tmp_path, "n.yaml", HEAD + "tables: [t]\n"), env={}).tables


# --- secrets -------------------------------------------------------------------------------------
def test_secret_variables_and_url_passwords_are_registered() -> None:
    text = (
        "source: postgresql://etl:${PG_PASSWORD}@db/clinic\ntarget: ${DST_URL}\n"
        "description: ${API_TOKEN}\ntables: [t]\n"
    )
    env = {
        "PG_PASSWORD": "pg-pw-4e1c",
        "DST_URL": "mariadb://root:maria-pw-77d@db/x",
        "API_TOKEN": "tok-9f2a",
    }
    load_text(text, env=env)
    assert secrets.scrub("pg-pw-4e1c tok-9f2a maria-pw-77d") == "*** *** ***"


def test_inline_password_warns_with_the_place_and_masked(logged: list[str]) -> None:
    text = "source: sqlite:///a.db\n\ntarget: postgresql://etl:inline-pw-5b3@db/x\ntables: [t]\n"
    load_text(text, file="jobs/x.yaml", env={})
    (message,) = logged
    assert message.startswith("jobs/x.yaml:3: target: the URL holds a plaintext password")
    assert "postgresql://etl:***@db/x" in message
    assert "inline-pw-5b3" not in message


def test_password_from_a_variable_does_not_warn(logged: list[str]) -> None:
    load_text("source: postgresql://etl:${PW}@db/x\ntarget: t\ntables: [t]\n", env={"PW": "xyz9"})
    assert logged == []


# --- files and folders ---------------------------------------------------------------------------
def test_validate_paths_walks_folders_sorted_and_reports_missing(tmp_path: Path) -> None:
    good = write(tmp_path, "jobs/b.yml", HEAD + "tables: [t]\n")
    bad = write(tmp_path, "jobs/a.yaml", HEAD + "tables: [t]\nworkers: 0\n")
    nested = write(tmp_path, "jobs/sub/c.yaml", HEAD + "tables: [t]\n")
    write(tmp_path, "jobs/notes.txt", "not a spec")
    missing = str(tmp_path / "nope.yaml")
    files, issues = validate_paths([str(tmp_path / "jobs"), missing, str(good)], env={})
    assert files == [bad, good, nested]
    assert [i.headline() for i in issues] == [
        f"{bad}:4:10: workers: must be greater than 0",
        f"{missing}:1:1: no such file or folder",
    ]


def test_validate_paths_keeps_the_path_as_given(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "jobs/a.yaml", "tables: [t]\n")
    _, issues = validate_paths(["./jobs/a.yaml"], env={})
    assert issues[0].file == "./jobs/a.yaml"


def test_load_reports_bytes_that_are_not_utf8(tmp_path: Path) -> None:
    spec = tmp_path / "bin.yaml"
    spec.write_bytes(b"source: a\ndescription: caf\xe9\n")
    with pytest.raises(SpecError) as caught:
        load(spec, env={})
    assert caught.value.errors[0].headline() == (
        f"{spec}:2:17: not UTF-8 text (byte 0xe9 cannot be decoded)"
    )


def test_repository_jobs_are_valid() -> None:
    jobs = Path(__file__).resolve().parents[3] / "jobs"
    if not jobs.is_dir():
        pytest.skip("no jobs/ folder")
    # jobs/clinic_deidentified.yaml takes its HMAC key from the environment only
    files, issues = validate_paths([str(jobs)], env={"SANITIZE_KEY": "test-only-key-0123456789"})
    assert files
    assert [i.render() for i in issues] == []
