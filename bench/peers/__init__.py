"""Peer job queues that faena is measured against (Celery, pgqueuer, arq, procrastinate).

Each module is runnable alone and prints exactly one JSON line on stdout, e.g.::

    python -m bench.peers.celery_redis throughput --jobs 20000
    python -m bench.peers.pgqueuer_pg latency --rate 200 --seconds 10

They run in their own virtualenv (``scripts/bench`` creates ``.venv-bench``).
"""
