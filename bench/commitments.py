"""The commitment-extraction example (``examples/commitments``) end to end, with a local
provider that takes 1 s to answer (``tests/ai/providers.py``, OpenAI wire protocol).

    python -m bench.commitments [--runs 5] [--delay 1.0]

A runtime on SQLite with a local pool; the workflow is applied once; then ``--runs`` runs,
one after the other: ``start`` → the ``llm`` step (guardrails, routing, budget, the streamed
provider call, schema validation, call record) → ``wait_run`` sees the run succeeded. One
warm-up run first (not counted). Each run's e-mail differs, so the answer cache (exact match
of the request: a hash, no embedding) misses; ``--no-cache`` measures without it.
Prints one JSON line: median and max seconds per run, and the provider's delay. Target: under
5 s with a provider answering in 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import orjson
from tests.ai.providers import FakeProvider, Reply

from faena.bootstrap import build_runtime
from faena.config import Settings
from faena.domain.jobs import DEFAULT_TENANT
from faena.domain.llm import ModelPrice, ProviderConfig, RoutingPolicy, Tier

EXAMPLE = Path(__file__).parents[1] / "examples" / "commitments" / "workflow.yaml"
EMAIL = """Hi all,

Thanks for the call. To sum up: Ana will send the signed contract to the supplier by Friday,
and Luis promised to review the Q3 budget next Tuesday. I'll book the meeting room for the
kick-off before the end of the month. Call me on +34 612 345 678 if anything changes.

Best,
Marta"""
ANSWER = {
    "commitments": [
        {"who": "Ana", "what": "send the signed contract to the supplier", "due": "2026-03-06"},
        {"who": "Luis", "what": "review the Q3 budget", "due": "2026-03-10"},
        {"who": "Marta", "what": "book the meeting room for the kick-off", "due": "2026-03-31"},
    ]
}


async def main(runs: int, delay_s: float, cache: bool) -> None:
    fake = await FakeProvider().start()
    fake.default = Reply(orjson.dumps(ANSWER).decode(), delay_s=delay_s)
    took: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        rt = build_runtime(
            Settings(
                database_url=f"sqlite:///{tmp}/faena.db", home=Path(tmp), workers=8,
                bootstrap_key="fk_bench_commitments_admin_key", rate_limits=False,
                retention_days=0,
            )
        )  # fmt: skip
        await rt.start()
        try:
            store = rt.store
            await store.put_llm_provider(  # type: ignore[attr-defined]
                ProviderConfig(
                    DEFAULT_TENANT, "local", "openai", fake.openai_url, None,
                    {"small": ModelPrice(0.1, 0.4)}, 30, 0,
                )
            )  # fmt: skip
            await store.put_llm_policy(  # type: ignore[attr-defined]
                RoutingPolicy(DEFAULT_TENANT, "commitments", (Tier("local/small"),), 1.0)
            )
            workflows = rt.workflows
            assert workflows is not None
            await workflows.apply_text(DEFAULT_TENANT, EXAMPLE.read_text())
            if not cache and rt.llm is not None:
                rt.llm.set_cache(None)
            for i in range(-1, runs):
                t0 = time.perf_counter()
                run, _ = await workflows.start(
                    DEFAULT_TENANT,
                    "commitments",
                    {"email": f"{EMAIL}\n(run {i})", "received": "2026-03-02"},
                )
                done = await workflows.wait_run(DEFAULT_TENANT, run.id, 30)
                if i >= 0:
                    took.append(time.perf_counter() - t0)
                assert done.state.value == "succeeded", done.error
                assert done.steps[0].output["output"] == ANSWER
        finally:
            await rt.stop()
            await fake.stop()
    print(
        json.dumps(
            {
                "bench": "commitments",
                "runs": runs,
                "provider_delay_s": delay_s,
                "answer_cache": cache and getattr(rt, "semantic_cache", None) is not None,
                "median_s": round(statistics.median(took), 4),
                "max_s": round(max(took), 4),
                "overhead_median_ms": round((statistics.median(took) - delay_s) * 1000, 1),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--delay", type=float, default=1.0)
    parser.add_argument("--no-cache", action="store_true", help="without the answer cache")
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.delay, not args.no_cache))
