"""Hand-off of secrets: the local pool (the in-memory engine) and the worker manager (fake
channels) resolve ``{{ secrets.NAME }}`` in the copy a worker gets, and mask what comes back."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import pytest

from faena.adapters.secret_keys import AesGcmKeyRing
from faena.domain.jobs import DEFAULT_TENANT, JobSpec, JobState
from faena.domain.logs import LogStream
from faena.services.secret_masking import MaskedSink
from faena.services.secrets import SecretService
from faena.services.worker_manager import ResultIn
from faena.testing import InMemoryFaena
from faena.worker.context import current_job
from faena.worker.masking import SecretMasker
from faena.worker.registry import TaskRegistry, task
from tests.unit.test_worker_manager import (
    World,
    world,  # noqa: F401 - the fixture
)

VALUE = "l0cal-p00l-s3cret"
registry = TaskRegistry()
seen: list[Any] = []


@task(registry=registry)
async def use_secret(password: str, note: str) -> dict[str, str]:
    seen.append(password)
    current_job().log(f"connecting with {password}")
    return {"echo": password, "note": note}


@task(registry=registry)
async def leak_in_error(password: str) -> None:
    raise RuntimeError(f"login failed for {password}")


@pytest.fixture
async def faena_() -> AsyncIterator[InMemoryFaena]:
    async with InMemoryFaena(registry=registry, workers=4) as f:
        assert f.runtime.secrets is not None
        await f.runtime.secrets.put(DEFAULT_TENANT, "PW", VALUE)
        yield f


async def test_the_task_gets_the_value_and_everything_back_is_masked(
    faena_: InMemoryFaena,
) -> None:
    job = await faena_.submit("use_secret", {"password": "{{ secrets.PW }}", "note": "n"})
    done = await faena_.wait(job.id)
    assert done.state is JobState.SUCCEEDED
    assert seen[-1] == VALUE
    assert done.payload == {"password": "{{ secrets.PW }}", "note": "n"}
    assert done.result == {"echo": "****", "note": "n"}
    assert await faena_.logs(job.id) == "connecting with ****\n"


async def test_a_secret_in_an_error_is_masked(faena_: InMemoryFaena) -> None:
    job = await faena_.submit("leak_in_error", {"password": "{{ secrets.PW }}"})
    done = await faena_.wait(job.id)
    assert done.state is JobState.FAILED
    assert done.error is not None and "login failed for ****" in done.error
    assert VALUE not in await faena_.logs(job.id)


async def test_an_unknown_secret_fails_the_job_without_retry(faena_: InMemoryFaena) -> None:
    job = await faena_.submit(
        "use_secret", {"password": "{{ secrets.NOPE }}", "note": ""}, max_attempts=3
    )
    done = await faena_.wait(job.id)
    assert (done.state, done.attempts) == (JobState.FAILED, 1)
    assert done.error is not None and "unknown secret 'NOPE'" in done.error


def test_the_masked_sink_masks_a_value_split_across_chunks() -> None:
    out: list[str] = []

    class Sink:
        def log(self, stream: LogStream, data: str) -> None:
            out.append(data)

    sink = MaskedSink(Sink(), SecretMasker([VALUE]))
    sink.log(LogStream.STDOUT, "x=" + VALUE[:5])
    sink.log(LogStream.STDOUT, VALUE[5:] + " done\n")
    sink.flush()
    assert "".join(out) == "x=**** done\n"


async def test_remote_assignments_carry_the_resolved_payload_and_the_mask(
    world: World,  # noqa: F811 - the fixture imported above
) -> None:
    secrets = SecretService(world.store, AesGcmKeyRing(os.urandom(32)), world.clock)
    await secrets.put(DEFAULT_TENANT, "PW", VALUE)
    world.manager.set_secrets(secrets)
    masks: list[tuple[str, ...]] = []
    session, channel = await world.connect("w", slots=4)

    def assign(job: Any, mask: tuple[str, ...] = ()) -> None:
        channel.assigned.append(job)
        masks.append(tuple(mask))

    channel.assign = assign
    ok, plain, missing = await world.submit(
        JobSpec("noop", payload={"p": "{{ secrets.PW }}"}),
        JobSpec("noop", payload={"p": "none"}),
        JobSpec("noop", payload={"p": "{{ secrets.NOPE }}"}, max_attempts=3),
    )
    assert await world.manager.place_once() == 3
    by_id = {j.id: (j, m) for j, m in zip(channel.assigned, masks, strict=True)}
    assert by_id[ok.id][0].payload == {"p": VALUE} and by_id[ok.id][1] == (VALUE,)
    assert by_id[plain.id][1] == () and missing.id not in by_id
    # The server masks what comes back too (a worker too old to know the mask field).
    await world.manager.result(
        session, ResultIn(ok.id, 1, DEFAULT_TENANT, False, result=VALUE, error=f"no {VALUE}")
    )
    await world.completer.drain()
    failed = await world.store.get(DEFAULT_TENANT, ok.id)
    assert failed is not None and VALUE not in f"{failed.result} {failed.error}"
    gone = await world.store.get(DEFAULT_TENANT, missing.id)
    assert gone is not None and gone.state is JobState.FAILED and gone.attempts == 1
    assert gone.error is not None and "unknown secret 'NOPE'" in gone.error
