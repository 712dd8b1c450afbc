"""Overhead of the ``llm`` kind over a raw provider call, against the local fake provider
(``tests/ai/providers.py``, OpenAI wire protocol, streamed answer of ~200 characters).

    python -m bench.llm_overhead [--calls 200] [--runs 3]

Seven measurements, each ``--calls`` sequential calls, median latency per run, median of the
runs; one JSON line each:

raw
    httpx streaming ``POST /v1/chat/completions`` and reading the SSE to ``[DONE]``.
adapter
    the same call through faena's OpenAI adapter alone (request body, SSE parsing, usage).
service_only
    ``LlmService.chat`` with an in-process provider that answers at once (no network): the
    service's own cost (store round trips, guardrails, routing, budgets, record).
service
    ``LlmService.chat`` on a SQLite store: replay lookup, guardrails (injection + PII),
    routing, budget reservation and settlement (a tenant budget is set), the streamed call,
    output checks and the call record.
job
    the ``llm`` kind's job path: an ``llm`` job (default options: the exact-match cache on,
    each prompt different, so it misses) through a runtime on SQLite with a local pool —
    submit, claim, run (as ``service``, streaming tokens into the job's logs, the cache lookup
    and store), complete, then ``wait`` returns its result. Interleaved with ``job_raw`` (the
    raw call again) and ``noop_job`` (a ``noop`` job: the generic job machinery).

``overhead_ms`` = median(adapter or service) - median(raw), and for the job median(job) -
median(job_raw): the target is under 5 ms. ``kind_ms`` = job - noop_job - job_raw: what the
``llm`` kind adds beyond the provider call and the generic job machinery.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
from tests.ai.providers import FakeProvider, Reply

from faena.adapters.llm import OpenAIProvider
from faena.bootstrap import build_runtime
from faena.config import Settings
from faena.domain.jobs import DEFAULT_TENANT
from faena.domain.llm import Budget, ChatRequest, Message, ModelPrice, ProviderConfig
from faena.ports.llm import ProviderCall, ProviderReply
from faena.services.llm import LlmService
from faena.services.orchestrator import JobRequest

ANSWER = (
    "Ana will send the signed contract by Friday; Luis will review the budget next Tuesday; "
    "Marta confirms the venue before the end of the month. Nothing else was promised here."
)
PROMPT = "List who promised what in this e-mail: Hi team, Ana will send the contract by Friday."
MEASURES = ("raw", "adapter", "service_only", "service", "job_raw", "job", "noop_job")


class _Instant:
    """A provider that answers at once, in process."""

    async def complete(self, call: ProviderCall, on_token: Any = None) -> ProviderReply:
        return ProviderReply(ANSWER, (), 20, 40, "stop")

    async def aclose(self) -> None:
        return None


def _provider(fake: FakeProvider) -> ProviderConfig:
    return ProviderConfig(
        DEFAULT_TENANT, "fake", "openai", fake.openai_url, None, {"m": ModelPrice(0.5, 1.5)}, 10, 0
    )


BODY = orjson.dumps(
    {
        "model": "m",
        "messages": [{"role": "user", "content": PROMPT}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
)


async def _raw(client: httpx.AsyncClient, fake: FakeProvider) -> None:
    async with client.stream(
        "POST", fake.openai_url + "/chat/completions", content=BODY,
        headers={"content-type": "application/json"},
    ) as r:  # fmt: skip
        async for line in r.aiter_lines():
            if line == "data: [DONE]":
                break


async def _measure(fake: FakeProvider, calls: int) -> dict[str, list[float]]:
    with tempfile.TemporaryDirectory() as tmp:
        rt = build_runtime(
            Settings(
                database_url=f"sqlite:///{tmp}/faena.db", home=Path(tmp), workers=8,
                bootstrap_key="fk_bench_llm_overhead_admin_key", rate_limits=False,
                retention_days=0, metrics=True,
            )
        )  # fmt: skip
        await rt.start()
        try:
            store = rt.store
            await store.put_llm_provider(_provider(fake))  # type: ignore[attr-defined]
            await store.put_llm_budget(Budget(DEFAULT_TENANT, "tenant", "*", 1e9, updated_at=1))  # type: ignore[attr-defined]
            request = ChatRequest((Message("user", PROMPT),), model="fake/m", cache=False)
            service = rt.llm
            adapter = OpenAIProvider()
            call = ProviderCall(_provider(fake), "m", request, None, stream=True)
            took: dict[str, list[float]] = {name: [] for name in MEASURES}
            instant = LlmService(rt.store, {"openai": _Instant()})  # type: ignore[arg-type]
            for _ in range(calls):
                t0 = time.perf_counter()
                await instant.chat(DEFAULT_TENANT, request)
                took["service_only"].append(time.perf_counter() - t0)
            async with httpx.AsyncClient() as client:
                for _ in range(calls):
                    t0 = time.perf_counter()
                    await _raw(client, fake)
                    t1 = time.perf_counter()
                    await adapter.complete(call, lambda _: None)
                    t2 = time.perf_counter()
                    await service.chat(DEFAULT_TENANT, request, on_token=lambda _: None)  # type: ignore[union-attr]
                    t3 = time.perf_counter()
                    took["raw"].append(t1 - t0)
                    took["adapter"].append(t2 - t1)
                    took["service"].append(t3 - t2)
            await adapter.aclose()
            # The job path, interleaved with a raw call and a noop job per iteration: the
            # noop job is the generic job machinery (submit, claim, complete, wait), so
            # job - noop_job - raw is what the llm kind itself adds.
            orchestrator = rt.orchestrator
            async with httpx.AsyncClient() as client:
                for i in range(calls):
                    payload = {"prompt": f"{PROMPT} (#{i})", "model": "fake/m"}  # cache misses
                    t0 = time.perf_counter()
                    await _raw(client, fake)
                    t1 = time.perf_counter()
                    (sub,) = await orchestrator.submit(DEFAULT_TENANT, [JobRequest("llm", payload)])
                    job = await orchestrator.wait(DEFAULT_TENANT, sub.job.id, 30)
                    t2 = time.perf_counter()
                    (sub,) = await orchestrator.submit(DEFAULT_TENANT, [JobRequest("noop")])
                    await orchestrator.wait(DEFAULT_TENANT, sub.job.id, 30)
                    t3 = time.perf_counter()
                    assert job.state.value == "succeeded", job.error
                    took["job_raw"].append(t1 - t0)
                    took["job"].append(t2 - t1)
                    took["noop_job"].append(t3 - t2)
        finally:
            await rt.stop()
    return took


async def main(calls: int, runs: int) -> None:
    fake = await FakeProvider().start()
    fake.default = Reply(ANSWER)
    medians: dict[str, list[float]] = {name: [] for name in MEASURES}
    try:
        for _ in range(runs):
            for name, values in (await _measure(fake, calls)).items():
                medians[name].append(statistics.median(values))
    finally:
        await fake.stop()
    ms = {name: statistics.median(values) * 1000 for name, values in medians.items()}
    for name, values in medians.items():
        line = {
            "bench": "llm_overhead",
            "measure": name,
            "calls": calls,
            "runs": runs,
            "median_ms": round(ms[name], 3),
            "run_medians_ms": [round(v * 1000, 3) for v in values],
        }
        if name in {"adapter", "service"}:
            line["overhead_ms"] = round(ms[name] - ms["raw"], 3)
        if name == "job":
            line["overhead_ms"] = round(ms["job"] - ms["job_raw"], 3)
            line["kind_ms"] = round(ms["job"] - ms["noop_job"] - ms["job_raw"], 3)
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.runs))
