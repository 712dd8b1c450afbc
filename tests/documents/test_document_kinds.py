"""The ``document.text`` and ``ocr`` kinds as the worker runs them: inputs from artefacts, URLs
and base64, the reading in the process pool, the cache by content hash, clear failures."""

from __future__ import annotations

import base64
import http.server
import io
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader, PdfWriter

from faena.adapters.blobs.local import LocalDirBlobStore
from faena.adapters.memory.store import MemoryStore
from faena.config import Settings
from faena.domain.jobs import Job, JobSpec
from faena.domain.logs import LogStream
from faena.ports.artefacts import CacheKey
from faena.ports.clock import SystemClock
from faena.services.artefacts import ArtefactService
from faena.worker.kinds.document_memo import ResultMemo
from faena.worker.kinds.documents import DocumentKind, DocumentPool
from tests.documents import samples


class Sink:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def log(self, stream: LogStream, data: str) -> None:
        self.lines.append(data)


@pytest.fixture(scope="module")
def pool() -> Iterator[DocumentPool]:
    found = DocumentPool(2)
    yield found
    found.close()


class Harness:
    def __init__(self, store: MemoryStore, artefacts: ArtefactService, pool: DocumentPool) -> None:
        self.store = store
        self.artefacts = artefacts
        self.kinds = {
            kind: DocumentKind(kind, pool, artefacts=artefacts, cache=store, owns_pool=False)
            for kind in ("document.text", "ocr")
        }

    async def run(self, kind: str, payload: Any, tenant: str = "default") -> Any:
        job = Job.from_spec(
            f"job-{time.monotonic_ns()}",
            JobSpec(kind=kind, payload=payload, tenant=tenant),
            time.time(),
        )
        return await self.kinds[kind].run(job, Sink())  # fmt: skip


@pytest.fixture
async def harness(tmp_path: Path, pool: DocumentPool) -> AsyncIterator[Harness]:
    store = MemoryStore()
    await store.open()
    artefacts = ArtefactService(store, LocalDirBlobStore(tmp_path / "blobs"), SystemClock())
    found = Harness(store, artefacts, pool)
    yield found
    for kind in found.kinds.values():
        await kind.aclose()


async def test_an_artefact_is_read_then_served_from_the_cache(harness: Harness) -> None:
    pdf = samples.text_pdf([samples.INVOICE, samples.LETTER])
    a = await harness.artefacts.put("default", "inv.pdf", "application/pdf", pdf)
    first = await harness.run("document.text", {"artefact": a.id, "pages": "2"})
    assert first.succeeded, first.error
    result = first.result
    assert result["text"] == "\n".join(samples.LETTER)
    assert [p["number"] for p in result["pages"]] == [2]
    assert result["sha256"] == a.sha256
    assert result["artefact"] == a.id
    assert result["cached"] is False
    assert result["time_s"] > 0 and result["max_rss_mb"] > 0
    again = await harness.run("document.text", {"artefact": a.id, "pages": "2"})
    assert again.result["cached"] is True
    assert again.result["text"] == result["text"]
    assert again.result["time_s"] < 0.005  # the cache hit path: two lookups, no bytes
    other_pages = await harness.run("document.text", {"artefact": a.id, "pages": "1"})
    assert other_pages.result["cached"] is False


class CountingStore:
    """The store, counting the document cache reads that reach it."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store
        self.reads = 0

    async def cached_result_for_artefact(self, *args: Any) -> Any:
        self.reads += 1
        return await self.store.cached_result_for_artefact(*args)

    async def get_cached_result(self, key: Any) -> Any:
        self.reads += 1
        return await self.store.get_cached_result(key)

    async def put_cached_result(self, *args: Any) -> None:
        await self.store.put_cached_result(*args)


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


async def test_a_repeated_hit_is_answered_in_process_without_a_store_read(
    harness: Harness, pool: DocumentPool
) -> None:
    """The memo: after a store hit (or the reading itself), the same artefact and options are
    answered without a store round trip until the artefact entry's TTL passes; the memo is
    per tenant; an artefact this process deletes is forgotten at once."""
    clock = FakeClock()
    memo = ResultMemo(artefact_ttl_s=30.0, clock=clock)
    harness.artefacts.on_delete(memo.forget_artefact)
    counting = CountingStore(harness.store)
    kind = DocumentKind(
        "document.text", pool, artefacts=harness.artefacts, cache=counting, owns_pool=False,
        memo=memo,
    )  # fmt: skip

    async def run(payload: Any, tenant: str = "default") -> Any:
        job = Job.from_spec(
            f"job-{time.monotonic_ns()}", JobSpec("document.text", payload, tenant=tenant), 0.0
        )
        return await kind.run(job, Sink())

    pdf = samples.text_pdf([["x y"]])
    a = await harness.artefacts.put("default", "i.pdf", "application/pdf", pdf)
    first = await run({"artefact": a.id})
    assert first.result["cached"] is False and counting.reads == 1
    hits = [await run({"artefact": a.id}) for _ in range(3)]
    assert [h.result["cached"] for h in hits] == [True] * 3
    assert hits[0].result["text"] == first.result["text"] == "x y"
    assert counting.reads == 1  # none of the hits went to the store
    hits[0].result["pages"].append("changed by a caller")
    assert len((await run({"artefact": a.id})).result["pages"]) == 1  # never shared
    clock.t += 31  # the artefact entry expired: the next hit asks the store again
    assert (await run({"artefact": a.id})).result["cached"] is True and counting.reads == 2
    other = await run({"artefact": a.id}, tenant="other")  # the memo is per tenant too
    assert not other.succeeded and "not found" in (other.error or "")
    await harness.artefacts.delete("default", a.id)
    gone = await run({"artefact": a.id})
    assert not gone.succeeded and "not found" in (gone.error or "")
    await kind.aclose()


def test_the_memo_keeps_at_most_its_bytes_least_recently_used_first() -> None:
    memo = ResultMemo(max_bytes=400)
    keys = [CacheKey("t", "document.text", f"{n:064x}", "o") for n in range(4)]
    for key in keys:
        memo.remember(key, {"text": "x" * 80})  # ~93 bytes each
    assert memo.result(keys[0]) is not None  # now the most recently used
    memo.remember(CacheKey("t", "document.text", "f" * 64, "o"), {"text": "y" * 80})
    assert memo.result(keys[1]) is None and memo.result(keys[0]) is not None
    memo.remember(CacheKey("t", "ocr", "e" * 64, "o"), {"text": "z" * 200})  # > a quarter
    assert memo.result(CacheKey("t", "ocr", "e" * 64, "o")) is None


async def test_the_cache_is_per_tenant(harness: Harness) -> None:
    data = base64.b64encode(samples.text_pdf([["shared text"]])).decode()
    assert (await harness.run("document.text", {"data_b64": data})).result["cached"] is False
    other = await harness.run("document.text", {"data_b64": data}, tenant="other")
    assert other.result["cached"] is False


async def test_an_image_is_read_by_the_ocr_kind_in_the_pool(harness: Harness) -> None:
    data = base64.b64encode(samples.image_bytes(samples.INVOICE)).decode()
    outcome = await harness.run("ocr", {"data_b64": data})
    assert outcome.succeeded, outcome.error
    assert outcome.result["ocr_pages"] == [1]
    assert "1,234.56 EUR" in outcome.result["text"]
    assert outcome.result["pages"][0]["confidence"] > 80


async def test_a_german_scan_is_read_with_lang_deu(harness: Harness) -> None:
    """``lang`` reaches Tesseract through the pool, is reported, and is part of the cache key
    (the same scan read with ``eng`` is read again, not served from the ``deu`` result)."""
    scan = samples.scanned_pdf_with(samples.GERMAN, font_path=samples.UNICODE_FONT)
    data = base64.b64encode(scan).decode()
    german = await harness.run("ocr", {"data_b64": data, "lang": "deu"})
    assert german.succeeded, german.error
    assert german.result["lang"] == "deu" and german.result["cached"] is False
    assert "Größere Straßenschäden über der Brücke" in german.result["text"]
    english = await harness.run("ocr", {"data_b64": data, "lang": "eng"})
    assert english.result["cached"] is False and english.result["lang"] == "eng"
    assert "Straßenschäden" not in english.result["text"]


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[str]:
    files = {"/doc.pdf": samples.text_pdf([["served over HTTP"]])}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = files.get(self.path)
            self.send_response(200 if body else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


async def test_a_url_is_fetched_and_a_missing_one_fails_for_good(
    harness: Harness, http_server: str
) -> None:
    ok = await harness.run("document.text", {"url": f"{http_server}/doc.pdf"})
    assert ok.succeeded, ok.error
    assert ok.result["text"] == "served over HTTP"
    assert ok.result["url"] == f"{http_server}/doc.pdf"
    missing = await harness.run("document.text", {"url": f"{http_server}/nope.pdf"})
    assert (missing.succeeded, missing.retryable) == (False, False)
    assert "answered 404" in (missing.error or "")


async def test_an_unreachable_url_fails_the_attempt_only(harness: Harness) -> None:
    outcome = await harness.run("document.text", {"url": "http://127.0.0.1:9/doc.pdf"})
    assert (outcome.succeeded, outcome.retryable) == (False, True)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"data_b64": base64.b64encode(samples.encrypted_pdf(["x"])).decode()}, "password"),
        ({"data_b64": base64.b64encode(b"%PDF-1.4 broken").decode()}, "corrupt"),
        ({"data_b64": "!!not base64!!"}, "not valid base64"),
        ({"artefact": "0190a0a0-0000-7000-8000-000000000001"}, "not found"),
    ],
    ids=["encrypted", "corrupt", "bad-base64", "unknown-artefact"],
)
async def test_unreadable_documents_fail_without_retries(
    harness: Harness, payload: Any, reason: str
) -> None:
    outcome = await harness.run("document.text", payload)
    assert (outcome.succeeded, outcome.retryable) == (False, False)
    assert reason in (outcome.error or "")


async def test_an_image_without_text_fails_without_retries(harness: Harness) -> None:
    data = base64.b64encode(samples.blank_image()).decode()
    outcome = await harness.run("ocr", {"data_b64": data})
    assert (outcome.succeeded, outcome.retryable) == (False, False)
    assert outcome.error == "no text found in the image"


async def test_another_tenants_artefact_is_not_found(harness: Harness) -> None:
    a = await harness.artefacts.put(
        "default", "x.pdf", "application/pdf", samples.text_pdf([["x"]])
    )
    outcome = await harness.run("document.text", {"artefact": a.id}, tenant="other")
    assert (outcome.succeeded, outcome.retryable) == (False, False)
    assert "not found" in (outcome.error or "")


async def test_a_remote_worker_refuses_artefact_inputs(pool: DocumentPool) -> None:
    from faena.bootstrap_documents import remote_document_kinds

    kinds = remote_document_kinds(Settings())
    assert set(kinds) == {"document.text", "ocr"}
    job = Job.from_spec(
        "j1", JobSpec(kind="ocr", payload={"artefact": "0190a0a0-0000-7000-8000-000000000001"}),
        time.time(),
    )  # fmt: skip
    outcome = await kinds["ocr"].run(job, Sink())
    assert (outcome.succeeded, outcome.retryable) == (False, False)
    assert "url or data_b64" in (outcome.error or "")
    for kind in kinds.values():
        await kind.aclose()


async def test_a_document_job_runs_end_to_end_on_the_local_pool(tmp_path: Path) -> None:
    """faena up's wiring: upload, submit document.text with the artefact, read the result."""
    from faena.bootstrap import build_runtime
    from faena.domain.errors import ValidationError
    from faena.services.orchestrator import JobRequest

    runtime = build_runtime(
        Settings(database_url=f"sqlite:///{tmp_path}/f.db", home=tmp_path, workers=2,
                 document_workers=1)
    )  # fmt: skip
    await runtime.start()
    try:
        assert runtime.artefacts is not None
        pdf = samples.mixed_pdf(samples.INVOICE, samples.LETTER)
        a = await runtime.artefacts.put("default", "mixed.pdf", "application/pdf", pdf)
        [submitted] = await runtime.orchestrator.submit(
            "default", [JobRequest("document.text", {"artefact": a.id})]
        )
        job = await runtime.orchestrator.wait("default", submitted.job.id, 60)
        assert job.state == "succeeded", job.error
        assert job.result["ocr_pages"] == [2]
        assert job.result["pages"][0]["text"] == "\n".join(samples.INVOICE)
        with pytest.raises(ValidationError, match="exactly one of"):
            await runtime.orchestrator.submit("default", [JobRequest("ocr", {})])
    finally:
        await runtime.stop()


REPORT_FLOW = """
name: report
inputs:
  title: string
steps:
  - id: report
    kind: make_report
    with: {title: "{{ inputs.title }}"}
  - id: text
    kind: document.text
    needs: [report]
    with: {artefact: "{{ steps.report.output.artefact }}"}
"""


async def _make_report(title: str) -> dict[str, Any]:
    """A task that produces a document: an artefact of the job, referred to in its result."""
    from faena.worker import artefacts

    return await artefacts.put("report.pdf", samples.text_pdf([[title]]), "application/pdf")


async def test_a_task_produces_an_artefact_that_a_document_job_reads(tmp_path: Path) -> None:
    from faena.bootstrap import build_runtime
    from faena.services.orchestrator import JobRequest
    from faena.worker.registry import Task, TaskRegistry

    registry = TaskRegistry()
    registry.add(Task("make_report", _make_report, True, False, None, None, None))
    runtime = build_runtime(
        Settings(database_url="memory://", home=tmp_path, workers=2, document_workers=1),
        registry=registry,
    )
    await runtime.start()
    try:
        [made] = await runtime.orchestrator.submit(
            "default", [JobRequest("make_report", {"title": "Quarterly report"})]
        )
        report = await runtime.orchestrator.wait("default", made.job.id, 30)
        assert report.state == "succeeded", report.error
        ref = report.result["artefact"]
        info = await runtime.artefacts.info("default", ref)  # type: ignore[union-attr]
        assert info.job_id == made.job.id
        # The same, as a workflow: the step output's artefact id feeds the next step.
        workflows = runtime.workflows
        await workflows.apply_text("default", REPORT_FLOW)
        run, _ = await workflows.start("default", "report", {"title": "Annual report"})
        run = await workflows.wait_run("default", run.id, 60)
        assert run.state == "succeeded", run
        text = next(s for s in run.steps if s.id == "text")
        assert text.output["text"] == "Annual report"
    finally:
        await runtime.stop()
        from faena.worker import artefacts

        artefacts.install(None)


async def test_outside_a_server_pool_tasks_hear_why_there_are_no_artefacts() -> None:
    from faena.worker import artefacts
    from faena.worker.context import JobContext, bind, unbind

    artefacts.install(None)
    token = bind(JobContext(job_id="j", attempt=1, tenant="t", kind="k", sink=Sink()))
    try:
        with pytest.raises(RuntimeError, match="not on a remote faena worker"):
            await artefacts.put("x", b"x")
    finally:
        unbind(token)


async def test_the_ocr_pages_of_one_document_are_shared_among_the_pool(pool: DocumentPool) -> None:
    pdf = samples.mixed_pdf(samples.INVOICE, samples.LETTER)  # page 1 text layer, page 2 a scan
    writer = PdfWriter()
    for source in (pdf, samples.scanned_pdf([["Third page here"], ["Fourth page here"]])):
        for page in PdfReader(io.BytesIO(source)).pages:
            writer.add_page(page)
    buf = io.BytesIO()
    writer.write(buf)
    got = await pool.read(buf.getvalue(), "document.text", {"ocr": "auto", "dpi": 200})
    assert [p["number"] for p in got["pages"]] == [1, 2, 3, 4]
    assert got["ocr_pages"] == [2, 3, 4]
    assert got["pages"][0]["text"] == "\n".join(samples.INVOICE)
    assert "confidence" not in got["pages"][0]
    assert [p["text"] for p in got["pages"][2:]] == ["Third page here", "Fourth page here"]
    assert got["text"].endswith("Third page here\n\nFourth page here")
    assert got["cpu_time_s"] > 0
