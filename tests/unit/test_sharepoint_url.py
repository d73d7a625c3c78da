"""sharepoint:// file stores (msgraphfs, an optional extra): what can be checked without a
Microsoft 365 tenant. The URL and its options, the credentials and where each comes from, the
one-line error naming the extra when msgraphfs is missing, a file job naming such a URL. No test
here reaches Microsoft Graph: none has been run against the live service."""

from __future__ import annotations

import gc
import sys
from pathlib import Path

import pytest

from runner.cli import main
from runner.connectors import _sharepoint
from runner.connectors.stores import filesystem
from runner.errors import ConnectError, SpecError

URL = "sharepoint://Lab%20Site/Shared%20Documents/instrument/raw?tenant_id=t-1&client_id=c-1"


def test_parse() -> None:
    options, root = _sharepoint.parse(URL)
    assert options == {
        "site_name": "Lab Site", "drive_name": "Shared Documents",
        "tenant_id": "t-1", "client_id": "c-1",
    }  # fmt: skip
    assert root == "/instrument/raw"
    assert _sharepoint.parse("sharepoint://Lab/Documents") == (
        {"site_name": "Lab", "drive_name": "Documents"}, "/",
    )  # fmt: skip
    options, _ = _sharepoint.parse("sharepoint://Lab/Documents/x?drive_id=b!abc%3D")
    assert options["drive_id"] == "b!abc="


@pytest.mark.parametrize(
    "url, message",
    [
        ("sharepoint://Lab", "names a site and a document library: sharepoint://SITE/LIBRARY"),
        ("sharepoint:///Documents/x", "names a site and a document library"),
        ("sharepoint://Lab/Documents/x?client_secret=s3cr3t",
         "must not hold the client secret: set MSGRAPHFS_CLIENT_SECRET"),
        ("sharepoint://Lab/Documents?tenant=x",
         "unknown option tenant (known: tenant_id, client_id, drive_id)"),
        ("sharepoint://Lab/Documents/a/../b", "cannot hold '.' or '..'"),
    ],
)  # fmt: skip
def test_parse_errors(url: str, message: str) -> None:
    with pytest.raises(SpecError, match=None) as caught:
        _sharepoint.parse(url)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert "s3cr3t" not in str(caught.value)


def test_credentials_from_url_then_msgraphfs_then_azure_variables() -> None:
    env = {"MSGRAPHFS_CLIENT_SECRET": "from-msgraphfs", "AZURE_CLIENT_SECRET": "from-azure",
           "AZURE_TENANT_ID": "t-azure", "AZURE_CLIENT_ID": "c-azure"}  # fmt: skip
    assert _sharepoint.credentials({"tenant_id": "t-url"}, env) == {
        "tenant_id": "t-url", "client_id": "c-azure", "client_secret": "from-msgraphfs",
    }  # fmt: skip
    with pytest.raises(ConnectError) as caught:
        _sharepoint.credentials({"client_id": "c"}, {})
    assert str(caught.value) == (
        "SharePoint: no tenant_id (?tenant_id= in the URL or MSGRAPHFS_TENANT_ID / "
        "AZURE_TENANT_ID), no client_secret (MSGRAPHFS_CLIENT_SECRET / AZURE_CLIENT_SECRET)"
    )


def _job(tmp_path: Path) -> Path:
    spec = tmp_path / "job.yaml"
    spec.write_text(
        f"job: to-sharepoint\nmode: copy\nsource: file://{tmp_path}/src\ntarget: '{URL}'\n"
        "files: ['*.csv']\n"
    )
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.csv").write_text("x\n")
    return spec


def test_missing_extra_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "msgraphfs", None)  # as if it were not installed
    with pytest.raises(ConnectError) as caught:
        filesystem(URL)
    assert str(caught.value) == 'SharePoint needs msgraphfs: pip install "etlrun[sharepoint]"'

    spec = _job(tmp_path)
    monkeypatch.setenv("ETLRUN_STATE", f"sqlite:///{tmp_path / 'state.db'}")
    assert main(["validate", str(spec)]) == 0  # the spec is valid without the extra
    code = main(["plan", str(spec)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == ConnectError.exit_code and code != 0
    assert err == ['error: SharePoint needs msgraphfs: pip install "etlrun[sharepoint]"']


# msgraphfs's OAuth client (authlib) raises in __del__ when it was never used ("no attribute
# 'session'"): Python ignores that, pytest would report it in whichever test the collector runs.
# The tests that make one collect it themselves, with that one warning ignored.
THIRD_PARTY_DEL = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


@THIRD_PARTY_DEL
def test_filesystem_for_the_library(monkeypatch: pytest.MonkeyPatch) -> None:
    """With msgraphfs installed: the filesystem is made for the URL's library (made, not used:
    signing in needs a tenant)."""
    pytest.importorskip("msgraphfs", reason="msgraphfs is not installed (etlrun[sharepoint])")
    monkeypatch.setenv("MSGRAPHFS_CLIENT_SECRET", "secret")
    fs, root = filesystem(URL)
    assert (fs.site_name, fs.drive_name, fs.tenant_id, fs.client_id) == (
        "Lab Site", "Shared Documents", "t-1", "c-1",
    )  # fmt: skip
    assert root == "/instrument/raw" and not fs._multi_site_mode
    fs, _ = filesystem("sharepoint://Lab/Documents?drive_id=b!x&tenant_id=t&client_id=c")
    assert fs.drive_url == "https://graph.microsoft.com/v1.0/drives/b!x"
    del fs
    gc.collect()


@THIRD_PARTY_DEL
def test_sign_in_failure_is_one_line() -> None:
    """With msgraphfs installed: a sign-in that cannot reach its token endpoint (a closed
    loopback port here, so nothing leaves this machine) fails in one line before planning."""
    msgraphfs = pytest.importorskip("msgraphfs", reason="msgraphfs is not installed")
    params = {"client_id": "c", "client_secret": "s", "scope": "x",
              "token_endpoint": "http://127.0.0.1:9/t/oauth2/v2.0/token",
              "grant_type": "client_credentials"}  # fmt: skip
    fs = msgraphfs.MSGDriveFS(
        site_name="Lab", drive_name="Documents", oauth2_client_params=params,
        skip_instance_cache=True,
    )  # fmt: skip
    with pytest.raises(ConnectError) as caught:
        _sharepoint.sign_in(fs, "/raw", "sharepoint://Lab/Documents/raw")
    assert str(caught.value).startswith("SharePoint sharepoint://Lab/Documents/raw: ")
    assert "\n" not in str(caught.value)
    del fs, caught
    gc.collect()
