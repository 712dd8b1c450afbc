"""Mail ingestion benchmark: messages per second from a mailbox to runs started.

    .venv/bin/python -m bench.mail_ingest [--messages 1000] [--store sqlite|memory|postgres]
                                          [--timeout 120]

A Dovecot (Debian's ``dovecot-imapd``, run as in ``tests/mail``) is started in a temporary
folder and ``--messages`` messages are APPENDed to one mailbox (timed apart). Then a faena
runtime (in this process: store, workflow engine, local pool of 8, the mail watcher) gets a
workflow of one ``noop`` step and a watch on that mailbox; the clock runs from the watch's
creation until every message has a run (the watch's ``processed`` counter) — each message is
fetched, parsed, recorded and flagged, and its run stored with its first job submitted. Bounded
by ``--timeout``. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from tests.conftest import POSTGRES_URL
from tests.mail.servers import PASSWORD, Dovecot, message

from faena.bootstrap import build_runtime
from faena.config import Settings
from faena.domain.jobs import DEFAULT_TENANT

WORKFLOW = """
name: bench-intake
inputs:
  message: object
steps:
  - {id: noop, kind: noop}
"""


async def _postgres_database() -> str:
    import asyncpg

    name = f"faena_bench_mail_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return f"{POSTGRES_URL.rsplit('/', 1)[0]}/{name}"


async def _drop_postgres(url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
    finally:
        await conn.close()


async def measure(dovecot: Dovecot, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    user = f"bench{uuid.uuid4().hex[:6]}"
    raws = [message(f"Invoice {i}", f"Total due {i}.00 EUR") for i in range(args.messages)]
    started = time.perf_counter()
    dovecot.append_many(user, raws)
    seed_s = time.perf_counter() - started

    url = {"memory": "memory://", "sqlite": f"sqlite:///{work}/faena.db"}.get(args.store)
    if url is None:
        url = await _postgres_database()
    settings = Settings(
        database_url=url,
        workers=8,
        bootstrap_key="fk_bench_mail_ingest_admin_key",
        secret_key=base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("="),
        mail_scan_s=0.1,
        rate_limits=False,
        retention_days=0,
        log_level="warning",
    )
    runtime = build_runtime(settings)
    await runtime.start()
    try:
        assert runtime.workflows is not None and runtime.mail is not None
        assert runtime.secrets is not None
        await runtime.workflows.apply_text(DEFAULT_TENANT, WORKFLOW)
        await runtime.secrets.put(DEFAULT_TENANT, "IMAP_PASSWORD", PASSWORD)
        started = time.perf_counter()
        await runtime.mail.add(
            DEFAULT_TENANT,
            {
                "name": "bench",
                "host": "127.0.0.1",
                "port": dovecot.imap_port,
                "security": "none",
                "username": user,
                "password_secret": "IMAP_PASSWORD",
                "workflow": "bench-intake",
                "poll_s": 0.5,
            },
        )
        deadline = started + args.timeout
        processed = 0
        while time.perf_counter() < deadline:
            watch = await runtime.mail.get(DEFAULT_TENANT, "bench")
            processed = watch.processed
            if processed >= args.messages:
                break
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - started
    finally:
        await runtime.stop()
        if args.store == "postgres":
            await _drop_postgres(url)
    return {
        "bench": "mail_ingest",
        "store": args.store,
        "messages": args.messages,
        "ingested": processed,
        "seconds": round(elapsed, 3),
        "messages_per_s": round(processed / elapsed, 1) if elapsed else None,
        "seed_seconds": round(seed_s, 3),
        "complete": processed >= args.messages,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--store", choices=["sqlite", "memory", "postgres"], default="sqlite")
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()
    if not 1 <= args.messages <= 100_000:
        parser.error("--messages must be between 1 and 100000")
    root = Path(tempfile.mkdtemp(prefix="faena-bench-dovecot-"))
    root.chmod(0o755)
    work = Path(tempfile.mkdtemp(prefix="faena-bench-mail-"))
    dovecot = Dovecot(root)
    try:
        dovecot.start()
        result = asyncio.run(measure(dovecot, args, work))
    finally:
        dovecot.stop()
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result))
    return 0 if result["complete"] else 1


if __name__ == "__main__":
    sys.exit(main())
