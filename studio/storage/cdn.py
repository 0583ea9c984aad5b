"""Cloud CDN invalidation of a stream's objects: the Compute API's
`urlMaps.invalidateCache` on the load balancer's URL map.

Segments are cached for a year under names never reused, so copies cached
while a stream was public stay readable at the edge by whoever kept their
URLs after the bucket's objects moved or went. With CDN_INVALIDATE on, the
pipeline asks for their invalidation when a stream becomes private or is
deleted (job `workers.jobs.invalidate_cdn`); `flask cdn purge --run` asks
the same by hand. Invalidation is asynchronous (a minute or two) and rate
limited by Google.

Credentials are the process's Application Default Credentials (the
workers' service account in production) with the compute scope; the
project is GCP_PROJECT, else theirs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import google.auth
import google.auth.exceptions
import requests
from google.auth.transport.requests import AuthorizedSession

from studio.config import GCP_NAME_PATTERN, GCP_PROJECT_PATTERN
from studio.storage import layout

SCOPE = "https://www.googleapis.com/auth/compute"
TIMEOUT = 30  # seconds for the token exchange and for the request
_NAME = re.compile(GCP_NAME_PATTERN)
_PROJECT = re.compile(GCP_PROJECT_PATTERN)


class CdnError(RuntimeError):
    """The invalidation could not be asked for (no credentials, the API
    refused or could not be reached); a job retries."""


def path_pattern(public_id: str, private: bool = False) -> str:
    """The URL path pattern of every object of the stream's folder."""
    return f"/{layout.stream_prefix(public_id, private)}*"


def invalidate(config: Mapping, patterns: Sequence[str]) -> list[str]:
    """Ask Cloud CDN to drop what it cached under each of `patterns` (paths
    from `path_pattern`) on the URL map CDN_URL_MAP, with one credential
    lookup and one session for all; returns the names of the Compute
    operations. Raises CdnError."""
    try:
        credentials, found_project = google.auth.default(scopes=[SCOPE])
    except google.auth.exceptions.GoogleAuthError as exc:
        raise CdnError(f"no Google Cloud credentials to invalidate the CDN: {exc}") from None
    project, url_map = config["GCP_PROJECT"] or found_project, config["CDN_URL_MAP"]
    if not project:
        raise CdnError("no Google Cloud project to invalidate the CDN in: set STUDIO_GCP_PROJECT")
    if not (_NAME.fullmatch(url_map) and _PROJECT.fullmatch(project)):
        raise CdnError(f"not a URL map {url_map!r} of a project {project!r}")
    url = (
        f"{config['COMPUTE_API_URL']}/compute/v1/projects/{project}"
        f"/global/urlMaps/{url_map}/invalidateCache"
    )
    with AuthorizedSession(credentials) as session:
        return [_invalidate_one(session, url, pattern) for pattern in patterns]


def _invalidate_one(session: AuthorizedSession, url: str, pattern: str) -> str:
    try:
        reply = session.post(url, json={"path": pattern}, timeout=TIMEOUT)
    except (requests.RequestException, google.auth.exceptions.GoogleAuthError) as exc:
        raise CdnError(f"invalidating {pattern} on the CDN: {exc}") from None
    if reply.status_code != 200:
        raise CdnError(
            f"invalidating {pattern} on the CDN: HTTP {reply.status_code} {reply.text[:300]}"
        )
    try:
        return str(reply.json().get("name", ""))
    except (ValueError, AttributeError):
        return ""
