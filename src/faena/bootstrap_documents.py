"""Composition of artefacts and documents (issue 9): the blob store, the ArtefactService, its
retention, and the ``document.text``/``ocr`` kinds. Called from :mod:`faena.bootstrap`; like
it, the only place these adapters are built."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from faena.config import Settings
from faena.domain.errors import ValidationError
from faena.ports.blobs import BlobStore
from faena.ports.clock import SystemClock
from faena.ports.executor import KindHandler
from faena.services.artefacts import ArtefactService
from faena.services.retention import DAY_S, Retention

if TYPE_CHECKING:
    from faena.bootstrap import Runtime


def open_blob_store(settings: Settings) -> BlobStore:
    """``FAENA_BLOB_URL``: empty → ``$FAENA_HOME/artefacts``; ``file:///PATH``; ``s3://…``."""
    url = settings.blob_url.strip()
    if not url:
        from faena.adapters.blobs.local import LocalDirBlobStore

        return LocalDirBlobStore(settings.home / "artefacts")
    scheme = urlsplit(url).scheme
    if scheme == "file":
        from faena.adapters.blobs.local import LocalDirBlobStore

        path = urlsplit(url).path
        if not path:
            raise ValidationError(f"bad blob URL {url!r}: expected file:///PATH")
        return LocalDirBlobStore(path)
    if scheme == "s3":
        try:
            import boto3  # noqa: F401
        except ImportError:
            raise ValidationError(
                "FAENA_BLOB_URL=s3://… needs boto3: pip install 'faena[s3]'"
            ) from None
        from faena.adapters.blobs.s3 import S3BlobStore, parse_s3_url

        return S3BlobStore(parse_s3_url(url))
    raise ValidationError(f"unsupported blob URL {url!r}: use file:///PATH or s3://BUCKET/PREFIX")


def build_artefacts(settings: Settings, runtime: Runtime) -> ArtefactService:
    """The ArtefactService on the runtime's store, with its purges added to retention."""
    clock = SystemClock()
    service = ArtefactService(
        runtime.store,  # type: ignore[arg-type]  # every store adapter is an ArtefactStore
        open_blob_store(settings),
        clock,
        max_bytes=settings.artefact_max_bytes,
        retention_s=settings.artefact_retention_days * DAY_S,
    )
    if runtime.retention is None and settings.artefact_retention_days > 0:
        runtime.retention = Retention(runtime.store, clock, keep_s=None)
    if runtime.retention is not None:
        cache_keep_s = settings.document_cache_days * DAY_S
        runtime.retention.add("artefacts", service.purge_expired)
        runtime.retention.add("document cache", lambda: service.purge_cache(cache_keep_s))
    if settings.workers > 0:  # async @faena.task functions of this pool may store artefacts
        from faena.worker import artefacts as task_artefacts

        task_artefacts.install(service)
    return service


def document_kinds(settings: Settings, runtime: Runtime) -> dict[str, KindHandler]:
    """``document.text`` and ``ocr`` on this process's pool: artefact inputs, cached results."""
    from faena.worker.kinds.document_memo import ResultMemo
    from faena.worker.kinds.documents import document_kinds as build

    cache: Any = runtime.store  # every store adapter keeps the document cache
    memo = None
    if settings.document_memo_s > 0:  # repeated hits without a store round trip
        memo = ResultMemo(artefact_ttl_s=settings.document_memo_s)
        if runtime.artefacts is not None:
            runtime.artefacts.on_delete(memo.forget_artefact)
    kinds = build(
        artefacts=runtime.artefacts,
        cache=cache,
        processes=settings.document_workers,
        max_bytes=settings.artefact_max_bytes,
        memo=memo,
    )
    return dict(kinds)


def remote_document_kinds(settings: Settings) -> dict[str, KindHandler]:
    """The same kinds for a remote ``faena worker``: ``url`` and ``data_b64`` inputs only (it
    has neither the server's store nor its artefacts), and no shared cache."""
    from faena.worker.kinds.documents import document_kinds as build

    kinds = build(
        artefacts=None,
        cache=None,
        processes=settings.document_workers,
        max_bytes=settings.artefact_max_bytes,
    )
    return dict(kinds)
