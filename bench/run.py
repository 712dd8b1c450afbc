"""Run faena and its peer job queues side by side and report medians and ratios.

    scripts/bench --runs 3                       # everything, 3 interleaved runs
    python bench/run.py --systems pgqueuer-pg,celery-redis --scenarios latency --runs 5

A *system* is just a command that prints one JSON line (see bench/README.md); the
scenario arguments are appended to it::

    <command> throughput --jobs N
    <command> latency --rate R --seconds S

Add a system by adding an entry to ``SYSTEMS``. A system that fails (non-zero exit, no
JSON line, an ``"error"`` key, or a timeout) is reported as failed and the run goes on.
Raw results go to ``bench/results/<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import shlex
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO_ROOT / "bench" / "results"

# name -> command (argv prefix). "{python}" is the interpreter running this script.
SYSTEMS: dict[str, list[str]] = {
    "faena": ["{python}", "-m", "bench.faena_embedded"],
    "faena-postgres": ["{python}", "-m", "bench.faena_postgres"],
    "celery-redis": ["{python}", "-m", "bench.peers.celery_redis"],
    "celery-redis-solo": ["{python}", "-m", "bench.peers.celery_redis"],
    "pgqueuer-pg": ["{python}", "-m", "bench.peers.pgqueuer_pg"],
    "arq-redis": ["{python}", "-m", "bench.peers.arq_redis"],
    "procrastinate-pg": ["{python}", "-m", "bench.peers.procrastinate_pg"],
}
# Arguments appended after the scenario's own (peer options live on the scenario).
SYSTEM_ARGS: dict[str, list[str]] = {
    # Celery's fastest setup found here: two `--pool solo` workers instead of prefork.
    "celery-redis-solo": ["--pool", "solo", "--workers", "2"],
}
PEERS = ["celery-redis", "celery-redis-solo", "pgqueuer-pg", "arq-redis", "procrastinate-pg"]
SCENARIOS = ["throughput", "latency"]

# Metrics shown per scenario: (key, header, higher_is_better).
METRICS: dict[str, list[tuple[str, str, bool]]] = {
    "throughput": [
        ("jobs_per_s", "jobs/s", True),
        ("steady_jobs_per_s", "steady jobs/s", True),
        ("enqueue_jobs_per_s", "enqueue jobs/s", True),
        ("startup_s", "startup s", False),
    ],
    "latency": [
        ("p50_ms", "p50 ms", False),
        ("p95_ms", "p95 ms", False),
        ("p99_ms", "p99 ms", False),
        ("max_ms", "max ms", False),
    ],
}
# Ratio columns: (key, label), always baseline value / system value.
RATIO_METRICS = {
    "throughput": [("jobs_per_s", "jobs/s")],
    "latency": [("p50_ms", "p50"), ("p99_ms", "p99")],
}
KILL_GRACE_S = 15.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--systems",
        default=",".join(SYSTEMS),
        help="comma-separated, from: " + ", ".join(SYSTEMS) + " (or 'peers')",
    )
    p.add_argument("--scenarios", default=",".join(SCENARIOS))
    p.add_argument("--runs", type=int, default=3, help="runs of each system x scenario")
    p.add_argument("--baseline", default="faena", help="ratios are baseline / system")
    p.add_argument("--jobs", type=int, default=20_000, help="throughput: jobs")
    p.add_argument("--rate", type=float, default=200.0, help="latency: jobs per second")
    p.add_argument("--seconds", type=float, default=10.0, help="latency: duration")
    p.add_argument("--timeout", type=float, default=600.0, help="bound on one run (s)")
    p.add_argument("--pause", type=float, default=1.0, help="seconds between runs")
    p.add_argument(
        "--args",
        action="append",
        default=[],
        metavar="SYSTEM=ARGS",
        help="extra arguments for one system, e.g. celery-redis='--pool solo'",
    )
    p.add_argument(
        "--add",
        action="append",
        default=[],
        metavar="NAME=COMMAND",
        help="register an extra system for this invocation",
    )
    p.add_argument("--out", type=Path, default=None, help="results file (default: timestamped)")
    p.add_argument("--list", action="store_true", help="list the registered systems and exit")
    return p.parse_args(argv)


def _fmt_rate(x: float) -> str:
    return str(int(x)) if x == int(x) else str(x)


def scenario_args(scenario: str, opts: argparse.Namespace) -> list[str]:
    if scenario == "throughput":
        return ["throughput", "--jobs", str(opts.jobs)]
    return ["latency", "--rate", _fmt_rate(opts.rate), "--seconds", _fmt_rate(opts.seconds)]


def run_one(cmd: list[str], timeout: float) -> dict[str, Any]:
    """Run one system command; never raises for the system's own failures."""
    t0 = time.perf_counter()
    try:
        proc = subprocess.Popen(
            cmd,
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        return {"ok": False, "error": f"cannot start: {exc}", "wall_s": 0.0}
    timed_out = False
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        # SIGTERM first: the peer drivers stop their own worker processes on it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=KILL_GRACE_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
    wall = time.perf_counter() - t0
    stdout = out.decode(errors="replace")
    stderr_tail = err.decode(errors="replace")[-4000:]
    result = None
    for raw in reversed(stdout.splitlines()):
        line = raw.strip()
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                result = json.loads(line)
                break
    rec: dict[str, Any] = {
        "returncode": proc.returncode,
        "wall_s": round(wall, 3),
        "result": result,
    }
    if timed_out:
        rec["error"] = f"timed out after {timeout:.0f} s"
    elif proc.returncode != 0 and result is not None and "error" in result:
        rec["error"] = str(result["error"])
    elif proc.returncode != 0:
        last = stderr_tail.strip().splitlines()[-1:] or ["(no stderr)"]
        rec["error"] = f"exit code {proc.returncode}: {last[0][:300]}"
    elif result is None:
        rec["error"] = "no JSON line on stdout"
    elif "error" in result:
        rec["error"] = str(result["error"])
    rec["ok"] = "error" not in rec
    if not rec["ok"]:
        rec["stderr_tail"] = stderr_tail
    return rec


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summarize(
    records: list[dict[str, Any]], systems: list[str], scenarios: list[str]
) -> dict[str, dict[str, dict[str, Any]]]:
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    for scenario in scenarios:
        summary[scenario] = {}
        for system in systems:
            recs = [r for r in records if r["scenario"] == scenario and r["system"] == system]
            ok = [r["result"] for r in recs if r["ok"]]
            row: dict[str, Any] = {"ok": len(ok), "runs": len(recs)}
            for key, _, _ in METRICS[scenario]:
                vals = [float(x[key]) for x in ok if isinstance(x.get(key), int | float)]
                row[key] = _median(vals)
                row[key + "_all"] = vals
            if len(ok) < len(recs):
                row["errors"] = sorted({r["error"] for r in recs if not r["ok"]})
            summary[scenario][system] = row
    return summary


def _num(x: float | None) -> str:
    if x is None:
        return "-"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def render(
    summary: dict[str, dict[str, dict[str, Any]]], baseline: str, opts: argparse.Namespace
) -> str:
    lines: list[str] = []
    for scenario, rows in summary.items():
        if scenario == "throughput":
            title = f"throughput: {opts.jobs:,} no-op jobs enqueued in bulk, then drained"
        else:
            title = (
                f"latency: {_fmt_rate(opts.rate)} jobs/s for {_fmt_rate(opts.seconds)} s, "
                "enqueue -> task body start"
            )
        lines += ["", f"### {title} (medians)", ""]
        base = rows.get(baseline)
        heads = [h for _, h, _ in METRICS[scenario]]
        ratio_keys = RATIO_METRICS[scenario]
        ratio_heads = [f"{baseline} / this ({label})" for _, label in ratio_keys]
        lines.append("| system | ok | " + " | ".join(heads + ratio_heads) + " |")
        lines.append("|---" * (2 + len(heads) + len(ratio_heads)) + "|")
        for system, row in rows.items():
            cells = [system, f"{row['ok']}/{row['runs']}"]
            cells += [_num(row[k]) for k, _, _ in METRICS[scenario]]
            for k, _ in ratio_keys:
                b = base.get(k) if base else None
                v = row.get(k)
                cells.append(f"{b / v:.2f}x" if b and v else "-")
            lines.append("| " + " | ".join(cells) + " |")
        failed = {s: r["errors"] for s, r in rows.items() if r.get("errors")}
        for system, errors in failed.items():
            for e in errors:
                lines.append(f"  FAILED {system}: {e[:300]}")
    lines.append("")
    lines.append(
        f"Ratios are {baseline} / system: for jobs/s above 1 means {baseline} is "
        f"faster; for latency below 1 means {baseline} is faster."
    )
    return "\n".join(lines)


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu_count": os.cpu_count(),
    }
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        info["mem_total"] = f.readline().split(":", 1)[1].strip()
    return info


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    registry = dict(SYSTEMS)
    for spec in opts.add:
        name, _, command = spec.partition("=")
        registry[name.strip()] = shlex.split(command)
    if opts.list:
        for name, cmd in registry.items():
            print(f"{name:20s} {' '.join(cmd + SYSTEM_ARGS.get(name, []))}")
        return 0
    systems = [s.strip() for s in opts.systems.split(",") if s.strip()]
    if systems == ["peers"]:
        systems = list(PEERS)
    scenarios = [s.strip() for s in opts.scenarios.split(",") if s.strip()]
    unknown = [s for s in systems if s not in registry] + [
        s for s in scenarios if s not in SCENARIOS
    ]
    if unknown:
        print(f"unknown system or scenario: {', '.join(unknown)}", file=sys.stderr)
        return 2
    extra: dict[str, list[str]] = {}
    for spec in opts.args:
        name, _, args = spec.partition("=")
        extra[name.strip()] = shlex.split(args)

    started = dt.datetime.now(dt.UTC)
    out = opts.out or RESULTS_DIR / f"{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {
        "started": started.isoformat(),
        "argv": sys.argv,
        "machine": machine_info(),
        "params": {
            "jobs": opts.jobs,
            "rate": opts.rate,
            "seconds": opts.seconds,
            "runs": opts.runs,
            "baseline": opts.baseline,
        },
        "systems": {s: registry[s] + SYSTEM_ARGS.get(s, []) + extra.get(s, []) for s in systems},
        "records": [],
    }
    records: list[dict[str, Any]] = doc["records"]
    total = opts.runs * len(scenarios) * len(systems)
    i = 0
    for k in range(opts.runs):
        for scenario in scenarios:
            # Interleave, and rotate the order so no system always runs first or last.
            order = systems[k % len(systems) :] + systems[: k % len(systems)]
            for system in order:
                i += 1
                cmd = [sys.executable if a == "{python}" else a for a in registry[system]]
                cmd += scenario_args(scenario, opts) + SYSTEM_ARGS.get(system, [])
                cmd += extra.get(system, [])
                load = os.getloadavg()[0]
                print(
                    f"[{i}/{total}] run {k + 1} {scenario:10s} {system:18s} (load {load:.1f}) ...",
                    end=" ",
                    flush=True,
                    file=sys.stderr,
                )
                rec = {
                    "run": k + 1,
                    "scenario": scenario,
                    "system": system,
                    "cmd": cmd,
                    "loadavg_before": round(load, 2),
                    **run_one(cmd, opts.timeout),
                }
                records.append(rec)
                if rec["ok"]:
                    r = rec["result"]
                    shown = (
                        f"{r.get('jobs_per_s')} jobs/s"
                        if scenario == "throughput"
                        else f"p50 {r.get('p50_ms')} ms, p99 {r.get('p99_ms')} ms"
                    )
                    print(f"{shown} ({rec['wall_s']:.0f} s)", file=sys.stderr)
                else:
                    print(f"FAILED: {rec['error'][:200]}", file=sys.stderr)
                out.write_text(json.dumps(doc, indent=1))  # keep partial results
                time.sleep(opts.pause)
    summary = summarize(records, systems, scenarios)
    doc["summary"] = summary
    doc["finished"] = dt.datetime.now(dt.UTC).isoformat()
    out.write_text(json.dumps(doc, indent=1))
    print(render(summary, opts.baseline, opts))
    print(f"\nraw results: {out.relative_to(REPO_ROOT) if out.is_relative_to(REPO_ROOT) else out}")
    return 0 if all(r["ok"] for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
