"""Artefacts and documents end to end with the real ``faena`` command: ``faena up`` on SQLite
driven by the CLI, and two ``faena server`` processes on one PostgreSQL sharing an S3 bucket
(a real moto server), where an artefact uploaded to one is read by a job on the other."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from pathlib import Path

import pytest

from tests.acceptance.conftest import Env, _postgres_database
from tests.documents import samples
from tests.documents.conftest import S3_KEYS, make_s3

pytestmark = pytest.mark.acceptance


def test_the_cli_puts_gets_lists_and_removes_and_a_job_reads_the_artefact(
    tmp_path: Path,
) -> None:
    env = Env(tmp_path, "sqlite:///./.faena/faena.db")
    env.env["FAENA_ARTEFACT_MAX_BYTES"] = str(512 * 1024)
    env.env["FAENA_DOCUMENT_WORKERS"] = "1"
    try:
        env.up("--workers", "2")
        pdf = tmp_path / "letter.pdf"
        pdf.write_bytes(samples.mixed_pdf(samples.INVOICE, samples.LETTER))
        artefact_id = env.cli("artefacts", "put", str(pdf)).stdout.strip()
        info = json.loads(env.cli("--json", "artefacts", "get", artefact_id, "--info").stdout)
        assert info["content_type"] == "application/pdf"
        assert info["sha256"] == hashlib.sha256(pdf.read_bytes()).hexdigest()
        out = tmp_path / "back.pdf"
        env.cli("artefacts", "get", artefact_id, "-o", str(out))
        assert out.read_bytes() == pdf.read_bytes()
        listed = json.loads(env.cli("--json", "artefacts", "list").stdout)
        assert [a["id"] for a in listed["artefacts"]] == [artefact_id]

        job = env.submit("document.text", {"artefact": artefact_id})
        done = env.wait_all_terminal([job["id"]], timeout=90)[job["id"]]
        assert done["state"] == "succeeded", done["error"]
        assert done["result"]["ocr_pages"] == [2]
        assert "1,234.56 EUR" in done["result"]["text"]
        again = env.submit("document.text", {"artefact": artefact_id})
        cached = env.wait_all_terminal([again["id"]])[again["id"]]
        assert cached["result"]["cached"] is True

        big = tmp_path / "big.bin"
        big.write_bytes(os.urandom(600 * 1024))
        refused = env.cli("artefacts", "put", str(big), check=False)
        assert refused.returncode != 0
        assert "too large" in refused.stderr or "larger than" in refused.stderr

        env.cli("artefacts", "rm", artefact_id)
        gone = env.cli("artefacts", "get", artefact_id, "--info", check=False)
        assert gone.returncode != 0 and "not found" in gone.stderr
        assert list((tmp_path / ".faena" / "artefacts").glob("*/*")) == []
    finally:
        env.close()


def test_two_servers_share_artefacts_through_s3(tmp_path: Path, moto_endpoint: str) -> None:
    bucket = asyncio.run(make_s3(moto_endpoint))
    asyncio.run(bucket.aclose())
    for url in _postgres_database():
        env = Env(tmp_path, url)
        env.env.update(
            {
                "FAENA_BLOB_URL": f"s3://{bucket.location.bucket}/faena?endpoint={moto_endpoint}",
                "AWS_ACCESS_KEY_ID": S3_KEYS["access_key"],
                "AWS_SECRET_ACCESS_KEY": S3_KEYS["secret_key"],
                "FAENA_DOCUMENT_WORKERS": "1",
            }
        )
        try:
            first = env.server()  # no local pool: it only takes the upload
            second = env.server("--workers", "2")
            with env.api_at(first) as api:
                r = api.post(
                    "/v1/artefacts",
                    params={"name": "inv.pdf"},
                    content=samples.text_pdf([samples.INVOICE]),
                    headers={"Content-Type": "application/pdf"},
                )
                assert r.status_code == 201, r.text
                artefact_id = r.json()["id"]
            with env.api_at(second) as api:
                content = api.get(f"/v1/artefacts/{artefact_id}/content")
                assert content.content == samples.text_pdf([samples.INVOICE])
                r = api.post(
                    "/v1/jobs", json={"kind": "document.text", "payload": {"artefact": artefact_id}}
                )
                assert r.status_code == 201, r.text
                job_id = r.json()["id"]
            env.env["FAENA_SERVER"] = first.url
            done = env.wait_all_terminal([job_id], timeout=90)[job_id]
            assert done["state"] == "succeeded", done["error"]
            assert done["result"]["text"] == "\n".join(samples.INVOICE)
        finally:
            env.close()
