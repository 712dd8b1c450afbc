"""The client's artefact calls: uploads streamed from a file, downloads streamed to one, so a
large file is never held in memory by the client either."""

from __future__ import annotations

import mimetypes
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import httpx

from faena.client_models import clean_params, decode, error_from_response, unreachable
from faena.domain.errors import ValidationError

if TYPE_CHECKING:
    from faena.client import Client

CHUNK = 1 << 20
TRANSFER_TIMEOUT_S = 600.0  # uploads and downloads of up to the artefact limit


def _chunks(f: IO[bytes]) -> Iterator[bytes]:
    while chunk := f.read(CHUNK):
        yield chunk


def put_artefact(
    client: Client,
    path: Path,
    *,
    name: str | None = None,
    content_type: str | None = None,
    job_id: str | None = None,
) -> dict[str, Any]:
    """Upload the file at ``path``; the answer is the artefact's metadata (with its id)."""
    try:
        f = path.open("rb")
        size = path.stat().st_size
    except OSError as e:
        raise ValidationError(f"cannot read {path}: {e.strerror or e}") from None
    ctype = content_type or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    with f:
        try:
            response = client._http.post(
                "/v1/artefacts",
                params=clean_params({"name": name or path.name, "job_id": job_id}),
                content=_chunks(f),
                headers={"Content-Type": ctype, "Content-Length": str(size)},
                timeout=max(client.timeout, TRANSFER_TIMEOUT_S),
            )
        except httpx.TransportError as e:
            raise unreachable(e, client.server, client.timeout) from None
    found: dict[str, Any] = decode(response, client.server)
    return found


def download_artefact(client: Client, artefact_id: str, out: IO[bytes]) -> int:
    """Write the artefact's content to ``out``; return how many bytes were written."""
    written = 0
    try:
        with client._http.stream(
            "GET",
            f"/v1/artefacts/{artefact_id}/content",
            timeout=max(client.timeout, TRANSFER_TIMEOUT_S),
        ) as response:
            if response.status_code >= 400:
                response.read()
                raise error_from_response(response, client.server)
            for chunk in response.iter_bytes(CHUNK):
                out.write(chunk)
                written += len(chunk)
    except httpx.TransportError as e:
        raise unreachable(e, client.server, client.timeout) from None
    return written


def get_artefact(client: Client, artefact_id: str) -> dict[str, Any]:
    found: dict[str, Any] = client._call("GET", f"/v1/artefacts/{artefact_id}")
    return found


def list_artefacts(
    client: Client, *, limit: int = 50, cursor: str | None = None, job_id: str | None = None
) -> dict[str, Any]:
    found: dict[str, Any] = client._call(
        "GET", "/v1/artefacts", params={"limit": limit, "cursor": cursor, "job_id": job_id}
    )
    return found


def delete_artefact(client: Client, artefact_id: str) -> None:
    """Delete the artefact (its bytes too); the server answers 204 with no body."""
    try:
        response = client._http.request("DELETE", f"/v1/artefacts/{artefact_id}")
    except httpx.TransportError as e:
        raise unreachable(e, client.server, client.timeout) from None
    if response.status_code >= 400:
        raise error_from_response(response, client.server)
