"""Workers bound to a tenant, end to end: a real ``faena server``, real ``faena worker`` agents
over gRPC, two tenants. A worker connected with tenant b's token never receives tenant a's job,
and each tenant lists only its own workers."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.acceptance.conftest import FAENA, Env
from tests.acceptance.test_workers import Cluster, wait_for

pytestmark = pytest.mark.acceptance


class Tenant:
    """A tenant of the cluster: an admin key of its own and a worker token made with it."""

    def __init__(self, cluster: Cluster, name: str) -> None:
        self.cluster = cluster
        self.name = name
        cluster.env.cli("tenants", "create", name)
        created = json.loads(
            cluster.env.cli(
                "--json", "keys", "create", f"{name}-admin", "--tenant", name, "--scope", "admin"
            ).stdout
        )
        self.key: str = created["key"]
        self.token = self.cli("workers", "token", "create", f"{name}-edge").stdout.strip()

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**self.cluster.env.env, "FAENA_API_KEY": self.key}
        result = subprocess.run(
            [FAENA, *args], cwd=self.cluster.env.root, env=env, capture_output=True, text=True,
            timeout=60, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        return result

    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.cluster.server.url,
            headers={"Authorization": f"Bearer {self.key}"},
            timeout=30,
        )

    def workers(self) -> list[dict[str, Any]]:
        with self.api() as api:
            return list(api.get("/v1/workers").json()["workers"])

    def submit(self, count: int) -> list[str]:
        jobs = [{"kind": "noop", "payload": {"tenant": self.name}} for _ in range(count)]
        with self.api() as api:
            r = api.post("/v1/jobs/batch", json={"jobs": jobs})
            assert r.status_code == 201, r.text
            return [j["id"] for j in r.json()]

    def job(self, job_id: str) -> dict[str, Any]:
        with self.api() as api:
            r = api.get(f"/v1/jobs/{job_id}")
            assert r.status_code == 200, r.text
            return dict(r.json())

    def connect_worker(self, worker_id: str) -> None:
        w = self.cluster.worker("--worker-id", worker_id, token=self.token, wait=False)
        wait_for(
            lambda: any(x["id"] == worker_id and x["live"] for x in self.workers()),
            what=f"worker {worker_id} of tenant {self.name} connected",
            output=w,
        )


@pytest.fixture
def tenants(faena_env: Env) -> Iterator[tuple[Cluster, Tenant, Tenant]]:
    cluster = Cluster(faena_env)
    try:
        yield cluster, Tenant(cluster, "a"), Tenant(cluster, "b")
    finally:
        cluster.close()


def test_a_tenants_worker_never_receives_another_tenants_job(
    tenants: tuple[Cluster, Tenant, Tenant],
) -> None:
    _, a, b = tenants
    b.connect_worker("b-worker")
    a_jobs = a.submit(10)
    (b_job,) = b.submit(1)
    wait_for(lambda: b.job(b_job)["state"] == "succeeded", what="tenant b's job done")
    assert b.job(b_job)["worker_id"] == "b-worker"
    time.sleep(1.0)  # several placement rounds with only b's worker connected
    for job_id in a_jobs:
        job = a.job(job_id)
        assert job["state"] == "queued" and job["worker_id"] is None, job
    assert a.job(a_jobs[0])["placement"] == "no worker serving this tenant is connected"

    a.connect_worker("a-worker")
    for job_id in a_jobs:
        wait_for(lambda j=job_id: a.job(j)["state"] == "succeeded", what=f"job {job_id} done")
        assert a.job(job_id)["worker_id"] == "a-worker"


def test_each_tenant_lists_only_its_own_workers(tenants: tuple[Cluster, Tenant, Tenant]) -> None:
    cluster, a, b = tenants
    a.connect_worker("a-worker")
    b.connect_worker("b-worker")
    assert [w["id"] for w in a.workers()] == ["a-worker"]
    listed = json.loads(b.cli("--json", "workers", "list").stdout)
    assert [(w["id"], w["tenant"]) for w in listed] == [("b-worker", "b")]
    with cluster.env.api() as operator:  # the default tenant's admin: neither is its worker
        ids = [w["id"] for w in operator.get("/v1/workers").json()["workers"]]
    assert "a-worker" not in ids and "b-worker" not in ids


def test_a_shared_token_of_the_operator_serves_every_tenant(
    tenants: tuple[Cluster, Tenant, Tenant],
) -> None:
    cluster, a, b = tenants
    shared = cluster.env.cli("workers", "token", "create", "fleet", "--shared").stdout.strip()
    cluster.worker("--worker-id", "fleet-1", token=shared, wait=False)
    wait_for(lambda: cluster.live("fleet-1"), what="the shared worker connected")
    ids = a.submit(2) + b.submit(2)
    for job_id in ids:
        owner = a if job_id in ids[:2] else b
        wait_for(lambda j=job_id, t=owner: t.job(j)["state"] == "succeeded", what="done")
        assert owner.job(job_id)["worker_id"] == "fleet-1"
    assert [w["id"] for w in b.workers()] == []  # a shared worker is listed to the operator
    refused = subprocess.run(
        [FAENA, "workers", "token", "create", "mine", "--shared"],
        cwd=cluster.env.root, env={**cluster.env.env, "FAENA_API_KEY": b.key},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert refused.returncode != 0
    assert "shared worker token" in refused.stderr
