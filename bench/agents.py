"""500 concurrent ``agent`` runs against the local fake provider (OpenAI wire format), with no
lost step.

    python -m bench.agents [--agents 500] [--database sqlite|memory] [--timeout 180]

Each agent asks the model (step 0), which answers with one tool call (``double``, a
``@faena.task``), runs it as a child job, gives the result back (step 1) and gets its answer.
All agents are submitted at once to one faena runtime (SQLite file, as ``faena up``) whose
local pool has room for every agent and its child job. The provider is the tests' fake server
on 127.0.0.1 (``tests/ai/providers.py``), answering at once, so the figure is faena's own cost.

Checked after the run: every agent succeeded with 2 steps and its one tool call succeeded; there
is exactly one child job per agent, with the right result; the provider saw exactly 2 calls per
agent. Prints one JSON line: wall time, agents/s, latency percentiles, lost steps (must be 0).
Bounded: ``--timeout`` seconds at most.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.ai.providers import FakeProvider, Reply

from faena.bootstrap import build_runtime
from faena.config import Settings
from faena.domain.jobs import DEFAULT_TENANT
from faena.domain.llm import ModelPrice, ProviderConfig
from faena.services.orchestrator import JobRequest
from faena.worker.registry import TaskRegistry, task

registry = TaskRegistry()


@task(registry=registry)
async def double(x: int) -> int:
    """Double a number."""
    return x * 2


class AgentProvider(FakeProvider):
    """Step 0: call ``double`` with the number in the prompt; step 1: answer with the result."""

    async def _take(self, request: Any) -> tuple[dict[str, Any], Any]:
        body, _ = await super()._take(request)
        last = body["messages"][-1]
        if last["role"] == "tool":
            return body, Reply(text=f"result {last['content']}")
        return body, Reply(tool_calls=[("double", {"x": int(last["content"].split()[-1])})])


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


async def main(args: argparse.Namespace) -> None:
    provider = await AgentProvider().start()
    with tempfile.TemporaryDirectory() as tmp:
        url = "memory://" if args.database == "memory" else f"sqlite:///{tmp}/faena.db"
        runtime = build_runtime(
            Settings(
                database_url=url,
                home=Path(tmp),
                workers=2 * args.agents + 50,
                bootstrap_key="fk_bench_agents_admin_key",
                rate_limits=False,
                metrics=False,
            ),
            registry=registry,
        )
        await runtime.start()
        try:
            await runtime.store.put_llm_provider(  # type: ignore[attr-defined]
                ProviderConfig(
                    DEFAULT_TENANT,
                    "fake",
                    "openai",
                    provider.openai_url,
                    models={"m": ModelPrice()},
                    max_retries=0,
                    timeout_s=60,
                )
            )
            await run(args, runtime, provider)
        finally:
            await runtime.stop()
            await provider.stop()


async def run(args: argparse.Namespace, runtime: Any, provider: FakeProvider) -> None:
    orchestrator = runtime.orchestrator
    requests = [
        JobRequest(
            "agent",
            {
                "prompt": f"double {i}",
                "model": "fake/m",
                "tools": ["double"],
                "time_limit_s": args.timeout,
            },
        )
        for i in range(args.agents)
    ]
    started = time.perf_counter()
    submitted = []
    for start in range(0, len(requests), 500):
        submitted += await orchestrator.submit(DEFAULT_TENANT, requests[start : start + 500])
    submit_s = time.perf_counter() - started
    ids = [s.job.id for s in submitted]
    jobs = await asyncio.gather(
        *(orchestrator.wait(DEFAULT_TENANT, job_id, args.timeout) for job_id in ids)
    )
    wall = time.perf_counter() - started
    lost, latencies, children = 0, [], set()
    for i, job in enumerate(jobs):
        ok = (
            job.state.value == "succeeded"
            and job.result["steps"] == 2
            and job.result["answer"] == f"result {2 * i}"
            and len(job.result["tool_calls"]) == 1
            and job.result["tool_calls"][0]["state"] == "succeeded"
        )
        if ok:
            child = await orchestrator.get(DEFAULT_TENANT, job.result["tool_calls"][0]["job_id"])
            ok = child.result == 2 * i and child.idempotency_key == f"agent:{job.id}:0:0"
            children.add(child.id)
        lost += not ok
        if job.finished_at is not None:
            latencies.append(job.finished_at - job.created_at)
    print(
        json.dumps(
            {
                "bench": "agents",
                "agents": args.agents,
                "database": args.database,
                "submit_s": round(submit_s, 2),
                "wall_s": round(wall, 2),
                "agents_per_s": round(args.agents / wall, 1),
                "latency_p50_s": round(pct(latencies, 50), 2) if latencies else None,
                "latency_p99_s": round(pct(latencies, 99), 2) if latencies else None,
                "provider_calls": provider.calls,
                "expected_provider_calls": 2 * args.agents,
                "child_jobs": len(children),
                "lost_steps": lost,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=500)
    parser.add_argument("--database", choices=("sqlite", "memory"), default="sqlite")
    parser.add_argument("--timeout", type=float, default=180.0)
    asyncio.run(main(parser.parse_args()))
