"""Artefacts from inside a task: ``await faena.worker.artefacts.put(name, data)`` stores a file
for the running job's tenant (tagged with its job id) and returns ``{"artefact": id, ...}``,
ready to be returned as (part of) the step's output; :func:`read` reads one by id.

Available to ``async`` tasks run by a server's own pool (``faena up``, ``faena server
--workers N``): the composition root installs the server's ArtefactService here. A remote
``faena worker`` has none (it cannot reach the server's blob store), nor does a thread or a
``cpu=True`` task (the service belongs to the event loop); those raise a clear RuntimeError.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from faena.worker.context import current_job


class ArtefactWriter(Protocol):
    async def put(
        self, tenant: str, name: str, content_type: str, data: bytes, *, job_id: str | None = None
    ) -> Any: ...

    async def get(self, tenant: str, artefact_id: str) -> tuple[Any, bytes]: ...


_installed: ArtefactWriter | None = None


def install(service: ArtefactWriter | None) -> None:
    """Make ``service`` the artefact store of tasks in this process (None: none)."""
    global _installed  # noqa: PLW0603 - one per process, like the task registry
    _installed = service


def _service() -> ArtefactWriter:
    if _installed is None:
        raise RuntimeError(
            "no artefact store here: artefacts are available to async tasks of a server's own"
            " pool (faena up / faena server --workers N), not on a remote faena worker"
        )
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError("faena.worker.artefacts works in async tasks only") from None
    return _installed


async def put(
    name: str, data: bytes, content_type: str = "application/octet-stream"
) -> dict[str, Any]:
    """Store ``data`` for the running job; the answer refers to it: ``{"artefact": id, "name",
    "size", "sha256", "content_type"}``."""
    job = current_job()
    created = await _service().put(job.tenant, name, content_type, data, job_id=job.job_id)
    return {
        "artefact": created.id,
        "name": created.name,
        "size": created.size,
        "sha256": created.sha256,
        "content_type": created.content_type,
    }


async def read(artefact_id: str) -> bytes:
    """The bytes of an artefact of the running job's tenant (NotFound for another's)."""
    job = current_job()
    _, data = await _service().get(job.tenant, artefact_id)
    return data
