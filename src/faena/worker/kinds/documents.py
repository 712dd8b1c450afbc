"""The ``document.text`` and ``ocr`` kinds: text from PDFs and images, per page, cached.

The handler resolves the input (an artefact, a URL, or base64 in the payload), looks the
result up in the cache by the input's sha256 and the options, and otherwise hands the bytes to
a small process pool (:func:`~faena.worker.kinds.document_reader.read_document`), so PDF
parsing and Tesseract never hold the event loop. For an artefact the sha256 is in its
metadata: a cache hit reads two rows (one query) and no bytes, and a repeated hit is answered
from an in-process memo without a store round trip (:mod:`.document_memo`).

A document that cannot be read (corrupt, password-protected, no text, a page beyond the end)
fails the job without retries; an unreachable URL or a dead pool process fails the attempt.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import structlog

from faena.domain.documents import DocumentRequest, parse_request
from faena.domain.errors import FaenaError, NotFound, ValidationError
from faena.domain.jobs import Job
from faena.domain.logs import LogStream
from faena.ports.artefacts import CacheKey
from faena.ports.executor import ExecutionSink
from faena.worker.kinds.document_memo import ResultMemo
from faena.worker.kinds.document_reader import (
    DocumentError,
    merge_parts,
    plan_document,
    read_document,
)
from faena.worker.outcome import Outcome, describe, failed

log = structlog.get_logger("faena.documents")

URL_TIMEOUT_S = 30.0
MAX_REDIRECTS = 5


class ArtefactSource(Protocol):
    """Artefact metadata and bytes for a tenant (the ArtefactService)."""

    async def info(self, tenant: str, artefact_id: str) -> Any: ...

    async def get(self, tenant: str, artefact_id: str) -> tuple[Any, bytes]: ...


class ResultCache(Protocol):
    async def get_cached_result(self, key: CacheKey) -> Any | None: ...

    async def cached_result_for_artefact(
        self, tenant: str, artefact_id: str, kind: str, options: str
    ) -> tuple[str, Any | None] | None: ...

    async def put_cached_result(self, key: CacheKey, result: Any, now: float) -> None: ...


class DocumentPool:
    """A lazily started process pool shared by the document kinds; never forked from the
    worker (it has threads), but from a fork server."""

    def __init__(self, processes: int = 2) -> None:
        self._processes = max(1, processes)
        self._pool: ProcessPoolExecutor | None = None

    def _get(self) -> ProcessPoolExecutor:
        if self._pool is None:
            methods = multiprocessing.get_all_start_methods()
            method = "forkserver" if "forkserver" in methods else "spawn"
            self._pool = ProcessPoolExecutor(
                max_workers=self._processes, mp_context=multiprocessing.get_context(method)
            )
        return self._pool

    async def read(self, data: bytes, kind: str, options: dict[str, Any]) -> dict[str, Any]:
        """Read a document: text layers first, then its OCR pages shared among the pool's
        processes (a 20-page scan is read by all of them at once)."""
        plan = await self._call(plan_document, data, options)
        ocr: list[int] = plan.pop("ocr")
        groups = [ocr[i :: self._processes] for i in range(min(self._processes, len(ocr)))]
        only_ocr = {**options, "ocr": "always"}
        parts = await asyncio.gather(
            *(self._call(_read_part, data, kind, {**only_ocr, "pages": g}) for g in groups)
        )
        return merge_parts([plan, *parts], str(options.get("ocr", "auto")))

    async def _call(self, fn: Any, *args: Any) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        try:
            result: dict[str, Any] = await loop.run_in_executor(self._get(), fn, *args)
        except BrokenProcessPool:
            self._pool = None  # a process died (out of memory?): the next call starts afresh
            raise
        return result

    async def warm(self) -> None:
        """Start the processes now (benchmarks, tests) rather than on the first document."""
        pool = self._get()
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(pool, _noop) for _ in range(self._processes)))

    async def aclose(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)

    def close(self) -> None:
        """Stop the processes from synchronous code (a test session's end)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def _read_part(data: bytes, kind: str, options: dict[str, Any]) -> dict[str, Any]:
    return read_document(data, kind, options, part=True)


def _noop() -> None:
    import faena.worker.kinds.document_reader  # noqa: F401 - loads pypdf & co. in the child


@dataclass(frozen=True, slots=True)
class _Source:
    data: bytes | None  # None: an artefact's, read from the blob store on a cache miss
    sha256: str
    fields: dict[str, Any]  # where it came from, added to the result
    hit: Any  # the cached result, if any


class DocumentKind:
    """One of the two kinds (``document.text`` or ``ocr``), as a :class:`KindHandler`."""

    def __init__(
        self,
        kind: str,
        pool: DocumentPool,
        *,
        artefacts: ArtefactSource | None = None,
        cache: ResultCache | None = None,
        max_bytes: int = 100 * 1024 * 1024,
        owns_pool: bool = True,
        memo: ResultMemo | None = None,
    ) -> None:
        self.kind = kind
        self.pool = pool
        self._artefacts = artefacts
        self._cache = cache
        self._memo = memo if cache is not None else None
        self._max_bytes = max_bytes
        self._owns_pool = owns_pool
        self._http: httpx.AsyncClient | None = None

    def validate(self, payload: Any) -> None:
        parse_request(self.kind, payload)

    async def run(self, job: Job, sink: ExecutionSink) -> Outcome:
        started = time.perf_counter()
        try:
            request = parse_request(self.kind, job.payload)
        except ValidationError as e:
            return failed(e.message, retryable=False)
        try:
            return await self._run(job, request, sink, started)
        except DocumentError as e:
            return failed(str(e), retryable=False)
        except (ValidationError, NotFound) as e:
            return failed(e.message, retryable=False)
        except FaenaError as e:  # the store or blob store is away: try again later
            return failed(e.message)
        except BrokenProcessPool:
            return failed("the document process died (out of memory?); will retry")

    async def _run(
        self, job: Job, request: DocumentRequest, sink: ExecutionSink, started: float
    ) -> Outcome:
        options = request.options
        digest = options.digest(self.kind)
        source = await self._source(job, request, digest)
        if isinstance(source, Outcome):
            return source
        if isinstance(source.hit, dict):
            elapsed = round(time.perf_counter() - started, 6)
            sink.log(
                LogStream.STDOUT,
                f"cache hit for sha256 {source.sha256[:12]}… ({elapsed * 1000:.2f} ms)",
            )
            result = {**source.hit, **source.fields, "cached": True, "time_s": elapsed}
            return Outcome(succeeded=True, result=result)
        data = source.data
        if data is None:
            assert self._artefacts is not None and request.artefact is not None
            _, data = await self._artefacts.get(job.tenant, request.artefact)
        read = await self.pool.read(data, self.kind, options.to_dict())
        result = {
            "text": read["text"],
            "pages": read["pages"],
            "page_count": read["page_count"],
            "format": read["format"],
            "sha256": source.sha256,
            "ocr_pages": read["ocr_pages"],
            "lang": options.lang,
            "cpu_time_s": read["cpu_time_s"],
            "max_rss_mb": read["max_rss_mb"],
        }
        if self._cache is not None:
            key = CacheKey(job.tenant, self.kind, source.sha256, digest)
            try:
                await self._cache.put_cached_result(key, result, time.time())
            except Exception as e:  # the result stands; only the next read costs more
                log.warning("document result not cached", error=describe(e))
            else:
                if self._memo is not None:
                    self._memo.remember(key, result)
        elapsed = round(time.perf_counter() - started, 4)
        sink.log(
            LogStream.STDOUT,
            f"read {len(read['pages'])} page(s), {len(read['ocr_pages'])} with OCR, in"
            f" {elapsed:.2f}s (peak RSS {read['max_rss_mb']} MB)",
        )
        return Outcome(
            succeeded=True,
            result={**result, **source.fields, "cached": False, "time_s": elapsed},
        )

    async def _source(self, job: Job, request: DocumentRequest, digest: str) -> _Source | Outcome:
        """The input's sha256 and the cached result for it; its bytes unless an artefact's
        (read only on a miss). For an artefact, one store read answers both."""
        if request.artefact is not None:
            return await self._artefact_source(job, request.artefact, digest)
        fields: dict[str, Any]
        if request.data_b64 is not None:
            data = _decode_b64(request.data_b64)
            fields = {"data_b64": len(data)}
        else:
            assert request.url is not None
            fetched = await self._fetch(request.url)
            if isinstance(fetched, Outcome):
                return fetched
            data = fetched
            fields = {"url": request.url}
        sha256 = hashlib.sha256(data).hexdigest()
        hit = None
        if self._cache is not None:
            key = CacheKey(job.tenant, self.kind, sha256, digest)
            hit = self._memo.result(key) if self._memo is not None else None
            if hit is None:
                hit = await self._cache.get_cached_result(key)
                if hit is not None and self._memo is not None:
                    self._memo.remember(key, hit)
        return _Source(data, sha256, fields, hit)

    async def _artefact_source(self, job: Job, artefact_id: str, digest: str) -> _Source | Outcome:
        """An artefact's sha256 and cached result: from the memo when this process has seen
        them, else in one store read (metadata joined with the cache row)."""
        fields: dict[str, Any] = {"artefact": artefact_id}
        if self._artefacts is None:
            return failed(
                "artefact inputs are read on the server's own worker pool (this worker has"
                " no blob store): send url or data_b64, or run it with faena up/server",
                retryable=False,
            )
        if self._cache is None:
            info = await self._artefacts.info(job.tenant, artefact_id)
            return _Source(None, str(info.sha256), fields, None)
        memo = self._memo
        if memo is not None:
            known = memo.sha_of(job.tenant, artefact_id)
            if known is not None:
                hit = memo.result(CacheKey(job.tenant, self.kind, known, digest))
                if hit is not None:
                    return _Source(None, known, fields, hit)
        found = await self._cache.cached_result_for_artefact(
            job.tenant, artefact_id, self.kind, digest
        )
        if found is None:
            raise NotFound(f"artefact {artefact_id!r} not found")
        sha256, hit = found
        if memo is not None:
            memo.remember_sha(job.tenant, artefact_id, sha256)
            if hit is not None:
                memo.remember(CacheKey(job.tenant, self.kind, sha256, digest), hit)
        return _Source(None, sha256, fields, hit)

    async def _fetch(self, url: str) -> bytes | Outcome:
        """The document at ``url``, at most ``max_bytes``; 4xx fail for good, others retry."""
        if self._http is None:
            self._http = httpx.AsyncClient(
                timeout=URL_TIMEOUT_S, follow_redirects=True, max_redirects=MAX_REDIRECTS
            )
        try:
            async with self._http.stream("GET", url) as response:
                status = response.status_code
                if status >= 400:
                    permanent = 400 <= status < 500 and status not in {408, 425, 429}
                    return failed(f"GET {url} answered {status}", retryable=not permanent)
                chunks = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > self._max_bytes:
                        return failed(
                            f"the document at {url} is larger than {self._max_bytes} bytes",
                            retryable=False,
                        )
                    chunks.append(chunk)
        except httpx.HTTPError as e:
            return failed(f"GET {url} failed: {describe(e)}")
        data = b"".join(chunks)
        if not data:
            return failed(f"the document at {url} is empty", retryable=False)
        return data

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        if self._owns_pool:
            await self.pool.aclose()


def _decode_b64(value: str) -> bytes:
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError("data_b64 is not valid base64") from None
    if not data:
        raise ValidationError("data_b64 decodes to nothing")
    return data


def document_kinds(
    *,
    artefacts: ArtefactSource | None,
    cache: ResultCache | None,
    processes: int = 2,
    max_bytes: int = 100 * 1024 * 1024,
    memo: ResultMemo | None = None,
) -> dict[str, DocumentKind]:
    """Both kinds on one shared pool (closed once, by ``document.text``) and one memo."""
    pool = DocumentPool(processes)
    return {
        kind: DocumentKind(
            kind, pool, artefacts=artefacts, cache=cache, max_bytes=max_bytes,
            owns_pool=kind == "document.text", memo=memo,
        )
        for kind in ("document.text", "ocr")
    }  # fmt: skip
