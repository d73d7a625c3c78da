"""SharePoint document libraries as a file store, through msgraphfs (Microsoft Graph).

    sharepoint://SITE/LIBRARY/folder/under/it?tenant_id=...&client_id=...&drive_id=...

SITE is the site's name (Graph looks it up by search), LIBRARY the document library's name
("Documents", "Shared Documents"); ``drive_id`` pins the library by id instead (a search can
find several sites). The app's client secret never goes in the URL: msgraphfs reads
``MSGRAPHFS_CLIENT_SECRET`` (or ``AZURE_CLIENT_SECRET``), and the tenant and client ids from the
URL or ``MSGRAPHFS_TENANT_ID`` / ``MSGRAPHFS_CLIENT_ID`` (or ``AZURE_*``). Optional extra:
``pip install "etlrun[sharepoint]"``.

Only the URL and credential handling is tested here; nothing has been run against the live
service (it needs a Microsoft 365 tenant).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from runner.errors import ConnectError, SpecError

OPTIONS = ("tenant_id", "client_id", "drive_id")
"""What a sharepoint:// URL's query may hold."""
EXTRA = 'SharePoint needs msgraphfs: pip install "etlrun[sharepoint]"'
SHAPE = "sharepoint://SITE/LIBRARY/folder (e.g. sharepoint://Lab/Documents/instrument/raw)"


def parse(url: str) -> tuple[dict[str, str], str]:
    """(msgraphfs options, root folder in the library) of a ``sharepoint://`` URL.

    Example:
        >>> parse("sharepoint://Lab%20Site/Shared%20Documents/raw/2026?tenant_id=t")
        ({'site_name': 'Lab Site', 'drive_name': 'Shared Documents', 'tenant_id': 't'}, '/raw/2026')
    """
    parts = urlsplit(url)
    query: dict[str, str] = {}
    for item in filter(None, parts.query.split("&")):
        key, _, value = item.partition("=")
        query[unquote(key)] = unquote(value)
    if "client_secret" in query:
        raise SpecError(
            "a SharePoint URL must not hold the client secret: set MSGRAPHFS_CLIENT_SECRET "
            "(or AZURE_CLIENT_SECRET) in the environment"
        )
    unknown = sorted(set(query) - set(OPTIONS))
    if unknown:
        raise SpecError(
            f"SharePoint URL: unknown option {', '.join(unknown)} (known: {', '.join(OPTIONS)})"
        )
    site = unquote(parts.netloc)
    segments = [unquote(s) for s in parts.path.split("/") if s]
    if not site or not segments:
        raise SpecError(f"a SharePoint URL names a site and a document library: {SHAPE}")
    if any(s in (".", "..") for s in segments):
        raise SpecError(f"a SharePoint URL's folder cannot hold '.' or '..': {SHAPE}")
    options = {"site_name": site, "drive_name": segments[0], **query}
    return options, "/" + "/".join(segments[1:])


def credentials(options: Mapping[str, str], environ: Mapping[str, str]) -> dict[str, str]:
    """The tenant id, client id and secret to sign in with, from the URL's options or the
    environment (``MSGRAPHFS_*`` first, then ``AZURE_*``); a missing one is named."""
    found, missing = {}, []
    for key in ("tenant_id", "client_id", "client_secret"):
        name = key.upper()
        value = options.get(key) or environ.get(f"MSGRAPHFS_{name}") or environ.get(f"AZURE_{name}")
        if value:
            found[key] = value
        else:
            where = "" if key == "client_secret" else f"?{key}= in the URL or "
            missing.append(f"{key} ({where}MSGRAPHFS_{name} / AZURE_{name})")
    if missing:
        raise ConnectError(f"SharePoint: no {', no '.join(missing)}")
    return found


def sign_in(fs: Any, root: str, where: str) -> None:
    """Sign in and find the library now, so bad credentials, an unknown site or library, or no
    route to Graph fail in one line before planning (msgraphfs raises httpx's errors)."""
    try:
        if fs.drive_url is None:
            fs.ensure_drive_id()
        fs.info(root)
    except FileNotFoundError:
        return  # the folder is made on the first upload, or planning says it is missing
    except Exception as exc:  # noqa: BLE001 - whatever Graph or httpx raised, said in one line
        message = " ".join(str(exc).split()) or type(exc).__name__
        raise ConnectError(f"SharePoint {where}: {message}") from exc


def filesystem(url: str) -> tuple[Any, str]:
    """(msgraphfs filesystem for the URL's library, root folder)."""
    options, root = parse(url)
    try:
        from msgraphfs import MSGDriveFS
    except ImportError as exc:
        raise ConnectError(EXTRA) from exc
    signed = credentials(options, os.environ)
    kwargs: dict[str, Any] = {**options, **signed}
    if "drive_id" in kwargs:  # pinned: the site and library names are only for people
        kwargs.pop("site_name")
        kwargs.pop("drive_name")
    try:
        return MSGDriveFS(**kwargs, skip_instance_cache=True), root
    except ValueError as exc:
        raise ConnectError(f"SharePoint: {exc}") from exc
