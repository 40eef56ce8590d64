"""Signup: requests/s of ``POST /subscribe`` under gunicorn vs a bare Flask insert endpoint.

Both run under gunicorn with the same number of sync workers on the same database, loaded
by wrk with the same connections for the same time; each request posts a new address. The
real endpoint validates the address, records consent, rate-limits (set very high here: the
limiter is not what is measured) and queues a confirmation mail. Counts 5xx replies and
"database is locked" in the servers' logs (targets: 0).
"""

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import common

LUA = Path(__file__).with_name("signup.lua")


def _environment(url: str, instance: Path) -> dict:
    return {
        **os.environ,
        "DATABASE_URL": url,
        "SECRET_KEY": "bench-secret-key-not-for-production",
        "FLASK_DEBUG": "0",
        "MAILER_INSTANCE_DIR": str(instance),
        "MAILER_CHECK_DELIVERABILITY": "0",
        "MAILER_SIGNUP_RATE_LIMIT": "100000000/minute",
        "MAILER_CONFIRMATIONS_PER_HOUR": "0",
        "RATELIMIT_STORAGE_URI": "memory://",
        "PYTHONPATH": str(common.ROOT),
    }


def _serve(target: str, env: dict, workers: int, port: int, log: Path) -> subprocess.Popen:
    gunicorn = Path(sys.executable).with_name("gunicorn")
    process = subprocess.Popen(
        [str(gunicorn), "-w", str(workers), "-b", f"127.0.0.1:{port}", target],
        cwd=common.ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"gunicorn {target} did not start: {log.read_text()[-2000:]}")


def _load(url: str, args, prefix: str) -> dict:
    command = [
        "wrk", "-t", str(args.threads), "-c", str(args.connections), "-d", f"{args.seconds}s",
        "-s", str(LUA), url, "--", prefix,
    ]  # fmt: skip
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    statuses = {int(s): int(n) for s, n in re.findall(r"^status (\d+) (\d+)$", output, re.M)}
    return {"requests_per_s": round(rate, 1), "statuses": statuses, "wrk": output}


def _measure(target: str, path: str, env: dict, args, prefix: str) -> dict:
    port = common.free_port()
    log = Path(tempfile.mkstemp(prefix="gunicorn-", suffix=".log")[1])
    server = _serve(target, env, args.workers, port, log)
    try:
        result = _load(f"http://127.0.0.1:{port}{path}", args, prefix)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    text = log.read_text(errors="replace")
    result["errors_5xx"] = sum(n for s, n in result["statuses"].items() if s >= 500)
    result["database_locked"] = text.count("database is locked")
    log.unlink()
    return result


def bench_database(kind: str, args) -> dict:
    """Both endpoints on one fresh database of ``kind``."""
    from mailer import create_app

    instance = Path(tempfile.mkdtemp(prefix="mailer-bench-instance-"))
    with common.database(kind) as url:
        common.create_schema(create_app(common.bench_config(url, 25, instance)))
        env = _environment(url, instance)
        ours = _measure("wsgi:app", "/subscribe", env, args, "signup")
        bare = _measure("bench.bare_app:app", "/insert", env, args, "bare")
    ratio = ours["requests_per_s"] / bare["requests_per_s"] if bare["requests_per_s"] else 0
    return {"database": kind, "ours": ours, "bare": bare, "ratio": round(ratio, 2)}


def main(argv: list[str] | None = None) -> dict:
    """Run the signup benchmark; print the table and save bench/results/signup-*.json."""
    parser = argparse.ArgumentParser(prog="python -m bench signup")
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers")
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    args, _unknown = parser.parse_known_args(argv)
    kinds = ("sqlite", "postgresql") if args.db == "both" else (args.db,)
    results = [bench_database(kind, args) for kind in kinds]
    rows = [
        [
            r["database"], f"{r['ours']['requests_per_s']:,.0f}",
            f"{r['bare']['requests_per_s']:,.0f}", f"{r['ratio']:.2f}",
            r["ours"]["errors_5xx"] + r["bare"]["errors_5xx"],
            r["ours"]["database_locked"] + r["bare"]["database_locked"],
        ]
        for r in results
    ]  # fmt: skip
    table = common.print_table(
        f"Signup: POST /subscribe vs bare insert, gunicorn {args.workers} sync workers, "
        f"wrk {args.connections} connections, {args.seconds} s",
        ["database", "/subscribe req/s", "bare insert req/s", "ratio", "5xx", "db locked"],
        rows,
    )
    common.save_results("signup", {"results": results, "table": table})
    return {"results": results, "table": table}
