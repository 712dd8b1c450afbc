"""Secrets end to end, on a real ``faena up`` (SQLite) and ``faena server`` (PostgreSQL), and a
real ``faena worker``, key rotation on both: set through the CLI, used by shell jobs as
``{{ secrets.NAME }}``, and then searched for, in clear, everywhere faena writes: the database
(file, WAL, every table), API answers, the live event stream and the process logs. It must be
nowhere."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.acceptance.conftest import ADMIN_KEY, FAENA, Env, FaenaProcess
from tests.acceptance.test_workers import Cluster

pytestmark = pytest.mark.acceptance

SECRET = "Sup3r-s3cret-p4ssw0rd-4711"
TOKEN = "tok-abcdef-0123456789"
MASK = "****"


def checks(reference: str, value: str) -> str:
    """A shell test that the job saw ``value`` where the payload says ``reference``, without
    the payload holding the value (it compares SHA-256 digests)."""
    digest = hashlib.sha256(value.encode()).hexdigest()
    return f"test \"$(printf %s '{reference}' | sha256sum | cut -c1-64)\" = {digest}"


def set_secret(env: Env, name: str, value: str) -> subprocess.CompletedProcess[str]:
    """``faena secrets set NAME`` with the value on stdin, as a script would."""
    result = subprocess.run(
        [FAENA, "secrets", "set", name], cwd=env.root, env=env.env, input=value + "\n",
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result


class EventRecorder:
    """Every message of ``WS /v1/events`` while the test runs, in the background."""

    def __init__(self, url: str) -> None:
        self._url = url.replace("http://", "ws://") + f"/v1/events?token={ADMIN_KEY}"
        self.messages: list[str] = []
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        assert self._ready.wait(10), "the event stream did not say hello"

    def _read(self) -> None:
        with connect(self._url) as ws:
            assert json.loads(ws.recv(timeout=10))["type"] == "hello"
            self._ready.set()
            while not self._stop.is_set():
                try:
                    self.messages.append(str(ws.recv(timeout=0.2)))
                except TimeoutError:
                    continue
                except ConnectionClosed:
                    return

    def close(self) -> str:
        self._stop.set()
        self._thread.join(timeout=10)
        return "\n".join(self.messages)


def database_text(env: Env) -> bytes:
    """Everything the store holds: the SQLite files' bytes, or every row of every table."""
    if env.database_url.startswith("sqlite"):
        home = env.root / ".faena"
        return b"".join(p.read_bytes() for p in sorted(home.glob("faena.db*")))

    async def dump() -> bytes:
        import asyncpg

        conn = await asyncpg.connect(env.database_url)
        try:
            tables = await conn.fetch(
                "SELECT schemaname, tablename FROM pg_tables "
                "WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
            )
            out: list[str] = []
            for t in tables:
                rows = await conn.fetch(f'SELECT t::text FROM "{t[0]}"."{t[1]}" t')
                out.extend(r[0] for r in rows)
            return "\n".join(out).encode()
        finally:
            await conn.close()

    return asyncio.run(dump())


def test_a_secret_reaches_the_job_and_is_nowhere_in_clear(faena_env: Env, tmp_path: Path) -> None:
    env = faena_env
    if not env.database_url.startswith("sqlite"):
        env.env["FAENA_SECRET_KEY"] = env.cli("secrets", "gen-key").stdout.strip()
    process = env.up("--workers", "4")
    events = EventRecorder(process.url)
    answers: list[str] = []
    set_secret(env, "DB_PASSWORD", SECRET)
    set_secret(env, "API_TOKEN", TOKEN)
    with env.api() as api:
        listed = api.get("/v1/secrets")
        answers.append(listed.text)
        assert [s["name"] for s in listed.json()["secrets"]] == ["API_TOKEN", "DB_PASSWORD"]
        command = (
            "echo password={{ secrets.DB_PASSWORD }}; echo token={{ secrets.API_TOKEN }} >&2; "
            + checks("{{ secrets.DB_PASSWORD }}", SECRET)
        )
        ok = api.post("/v1/jobs", json={"kind": "shell", "payload": {"command": command}})
        failing = api.post(
            "/v1/jobs",
            json={"kind": "shell", "payload": {"command": "echo {{ secrets.API_TOKEN }}; exit 3"}},
        )
        unknown = api.post(
            "/v1/jobs",
            json={"kind": "shell", "retries": 3, "payload": {"command": "echo {{ secrets.NOPE }}"}},
        )
        answers += [ok.text, failing.text, unknown.text]
        ids = [r.json()["id"] for r in (ok, failing, unknown)]
        final = env.wait_all_terminal(ids)
        good, bad, missing = (final[i] for i in ids)
        # The job ran with the value (its `test` passed), and saw it masked in what it sent back.
        assert good["state"] == "succeeded", good
        assert good["payload"]["command"] == command  # stored with the reference, not the value
        logs = api.get(f"/v1/jobs/{ids[0]}/logs")
        answers.append(logs.text)
        text = "".join(c["data"] for c in logs.json()["chunks"])
        assert f"password={MASK}" in text and f"token={MASK}" in text
        assert good["result"]["stdout"] == f"password={MASK}\n"
        assert bad["state"] == "failed" and bad["result"]["stdout"] == f"{MASK}\n"
        # An unknown secret fails the job at once, naming the secret, without a retry.
        assert missing["state"] == "failed" and missing["attempts"] == 1
        assert "unknown secret 'NOPE'" in missing["error"]
        for job_id in ids:
            answers.append(api.get(f"/v1/jobs/{job_id}").text)
            answers.append(api.get(f"/v1/jobs/{job_id}/logs").text)
        # A workflow step: its `with:` is rendered, but the reference is left for the hand-off.
        step = {"command": "echo {{ inputs.greeting }} {{ secrets.API_TOKEN }}"}
        flow = {
            "inputs": {"greeting": {"type": "string"}},
            "steps": [{"id": "s", "kind": "shell", "with": step}],
        }
        assert api.put("/v1/workflows/uses-secret", json=flow).status_code == 201
        run = api.post(
            "/v1/workflows/uses-secret/runs",
            params={"wait": 30},
            json={"inputs": {"greeting": "hi"}},
        )
        answers.append(run.text)
        assert run.json()["state"] == "succeeded", run.text
        assert run.json()["steps"][0]["output"]["stdout"] == f"hi {MASK}\n"
        answers.append(api.get("/v1/jobs", params={"limit": 100}).text)
        answers.append(api.get(f"/v1/runs/{run.json()['id']}").text)
        audit = api.get("/v1/audit", params={"action": "secrets.resolve", "limit": 100})
        answers.append(audit.text)
        assert {e["target"] for e in audit.json()["entries"]} >= {
            "secret:DB_PASSWORD",
            "secret:API_TOKEN",
        }
    listing = env.cli("secrets", "list")
    answers.append(listing.stdout + listing.stderr)
    assert "DB_PASSWORD" in listing.stdout
    streamed = events.close()
    assert ids[0] in streamed  # the stream did carry these jobs' events and logs
    stored = database_text(env)
    assert b"secrets.DB_PASSWORD" in stored  # the references are there ...
    process.kill()
    stored += database_text(env)
    for value in (SECRET, TOKEN):
        assert value.encode() not in stored, "a secret is in the database in clear"
        assert all(value not in a for a in answers), "a secret is in an API answer"
        assert value not in streamed, "a secret is in the event stream"
        assert value not in process.output, "a secret is in the server's log"


def test_a_remote_worker_gets_the_value_and_masks_it(tmp_path: Path) -> None:
    cluster = Cluster(Env(tmp_path, "sqlite:///./.faena/faena.db"))
    try:
        w = cluster.worker("--allow-shell")
        set_secret(cluster.env, "DEPLOY_KEY", SECRET)
        command = "echo key={{ secrets.DEPLOY_KEY }}; " + checks("{{ secrets.DEPLOY_KEY }}", SECRET)
        (job_id,) = cluster.batch([{"kind": "shell", "payload": {"command": command}}])
        job = cluster.env.wait_all_terminal([job_id])[job_id]
        assert job["state"] == "succeeded", job
        assert job["result"]["stdout"] == f"key={MASK}\n"
        with cluster.env.api() as api:
            logs = api.get(f"/v1/jobs/{job_id}/logs").text
        assert f"key={MASK}" in logs and SECRET not in logs
        server: FaenaProcess = cluster.server
        for text in (server.output, w.output, json.dumps(job)):
            assert SECRET not in text
    finally:
        cluster.close()
    assert SECRET.encode() not in database_text(cluster.env)


def test_embedded_key_is_created_private_and_rotation_keeps_secrets(tmp_path: Path) -> None:
    env = Env(tmp_path, "sqlite:///./.faena/faena.db")
    try:
        process = env.up("--workers", "2")
        set_secret(env, "ROTATED", SECRET)
        cert = env.write("cert.pem", "-----BEGIN KEY-----\nabc\n")
        assert "version 1" in env.cli("secrets", "set", "CERT", "--from-file", str(cert)).stdout
        assert "deleted" in env.cli("secrets", "delete", "CERT").stdout
        key_file = tmp_path / ".faena" / "secret.key"
        assert key_file.stat().st_mode & 0o777 == 0o600
        old_key = key_file.read_text().strip()
        process.kill()
        rotated = env.cli("--json", "secrets", "rotate-key", "--generate")
        report: dict[str, Any] = json.loads(rotated.stdout)
        assert report["resealed"] == 1
        assert key_file.read_text().strip() != old_key
        assert (tmp_path / ".faena" / "secret.key.previous").read_text().strip() == old_key
        assert json.loads(env.cli("--json", "secrets", "rotate-key").stdout)["resealed"] == 0
        (tmp_path / ".faena" / "secret.key.previous").unlink()  # the old key is not needed
        env.up("--workers", "2")
        job = env.submit("shell", {"command": checks("{{ secrets.ROTATED }}", SECRET)})
        assert env.wait_all_terminal([job["id"]])[job["id"]]["state"] == "succeeded"
    finally:
        env.close()


def test_rotating_the_key_on_postgresql_keeps_every_tenants_secrets(pg_env: Env) -> None:
    """The FAENA_SECRET_KEY procedure of docs/secrets.md, end to end on PostgreSQL: servers
    restarted with the new key and the old one as previous, ``faena secrets rotate-key``
    re-encrypts every tenant's rows (and again: none), then a server with the new key alone
    hands the values to jobs of both tenants; no value is ever in the database in clear."""
    env = pg_env
    old = env.cli("secrets", "gen-key").stdout.strip()
    new = env.cli("secrets", "gen-key").stdout.strip()
    env.env["FAENA_SECRET_KEY"] = old
    first = env.server("--workers", "2")
    env.env["FAENA_SERVER"] = first.url
    env.cli("tenants", "create", "beta")
    beta_key = json.loads(
        env.cli(
            "--json", "keys", "create", "beta-admin", "--tenant", "beta", "--scope", "admin"
        ).stdout
    )["key"]
    set_secret(env, "DB_PASSWORD", SECRET)
    beta = Env(env.root, env.database_url)
    beta.env = {**env.env, "FAENA_API_KEY": beta_key}
    set_secret(beta, "API_TOKEN", TOKEN)
    before = _key_ids(env)
    assert len(before) == 1  # both rows under the old key
    first.kill()

    rolled = {"FAENA_SECRET_KEY": new, "FAENA_SECRET_KEY_PREVIOUS": old}
    env.env.update(rolled)
    env.server("--workers", "2")  # restarted with the new key, the old one to read with
    report = json.loads(env.cli("--json", "secrets", "rotate-key").stdout)
    assert report["resealed"] == 2 and report["skipped"] == 0
    assert report["key_id"] not in before
    assert _key_ids(env) == {report["key_id"]}
    assert json.loads(env.cli("--json", "secrets", "rotate-key").stdout)["resealed"] == 0
    for process in env.processes:
        if process.proc is not None and process.proc.poll() is None:
            process.kill()

    del env.env["FAENA_SECRET_KEY_PREVIOUS"]  # the old key is gone for good
    last = env.server("--workers", "2")
    env.env["FAENA_SERVER"] = beta.env["FAENA_SERVER"] = last.url
    default_job = env.submit("shell", {"command": checks("{{ secrets.DB_PASSWORD }}", SECRET)})
    with httpx.Client(
        base_url=last.url, headers={"Authorization": f"Bearer {beta_key}"}, timeout=30
    ) as api:
        created = api.post(
            "/v1/jobs",
            json={
                "kind": "shell",
                "payload": {"command": checks("{{ secrets.API_TOKEN }}", TOKEN)},
            },
        )
        assert created.status_code == 201, created.text
        beta_job = created.json()["id"]
        for _ in range(120):
            job = api.get(f"/v1/jobs/{beta_job}", params={"wait": 1}).json()
            if job["state"] in {"succeeded", "failed"}:
                break
        assert job["state"] == "succeeded", job
    assert env.wait_all_terminal([default_job["id"]])[default_job["id"]]["state"] == "succeeded"
    with env.api() as api:
        audit = api.get("/v1/audit", params={"action": "secrets.rotate"}).json()["entries"]
    assert audit, "the rotation is audited"
    stored = database_text(env)
    for value in (SECRET, TOKEN):
        assert value.encode() not in stored, "a secret is in the database in clear"


def _key_ids(env: Env) -> set[str]:
    """The key ids the secrets table's rows are sealed under."""

    async def read() -> set[str]:
        import asyncpg

        conn = await asyncpg.connect(env.database_url)
        try:
            return {r[0] for r in await conn.fetch("SELECT DISTINCT key_id FROM secrets")}
        finally:
            await conn.close()

    return asyncio.run(read())
