"""Scale: enqueue and send to 1,000,000 generated subscribers into smtp-sink.

For each database, with 100,000 and then N subscribers (default 1,000,000): generate the
rows in the database, then run a worker process that enqueues the issue (one INSERT ...
SELECT) and sends it with the default settings (sender processes = cores, 4 connections).
Reports enqueue time, messages/s and the peak RSS of the worker and of its largest sender
process; memory should be flat between the two sizes.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import common


def run_worker(config: dict) -> dict:
    """Run bench/scale_worker.py in its own process; return its JSON figures."""
    result = subprocess.run(
        [sys.executable, "-m", "bench.scale_worker", json.dumps(config)],
        cwd=common.ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"scale worker failed: {result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def bench_one(kind: str, count: int) -> dict:
    """One database of ``kind`` with ``count`` subscribers: generate, enqueue, send."""
    from mailer import create_app

    port = common.free_port()
    instance = Path(tempfile.mkdtemp(prefix="mailer-bench-instance-"))
    with common.database(kind) as url, common.smtp_sink(port):
        config = common.bench_config(url, port, instance)
        app = create_app(config)
        common.create_schema(app)
        size = common.build_digest(app)
        generated = common.generate_subscribers(app, count)
        figures = run_worker(config)
    if figures["sent"] != count:
        raise RuntimeError(f"sent {figures['sent']} of {count}: {figures}")
    return {"database": kind, "subscribers": count, "size_bytes": size,
            "generate_s": round(generated, 1), **figures}  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    """Run the scale benchmark; print the table and save bench/results/scale-*.json."""
    parser = argparse.ArgumentParser(prog="python -m bench scale")
    parser.add_argument("--n", type=int, default=1_000_000, help="subscribers (largest run)")
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    args, _unknown = parser.parse_known_args(argv)
    kinds = ("sqlite", "postgresql") if args.db == "both" else (args.db,)
    sizes = sorted({min(100_000, args.n), args.n})
    results = []
    for kind in kinds:
        for count in sizes:
            results.append(bench_one(kind, count))
            print(results[-1], flush=True)
    rows = [
        [
            r["database"], f"{r['subscribers']:,}", f"{r['enqueue_s']:.1f}",
            f"{r['msgs_per_s']:,.0f}", f"{r['send_s']:,.0f}", f"{r['worker_peak_rss_mb']:.0f}",
            f"{r['sender_peak_rss_mb']:.0f}",
        ]
        for r in results
    ]  # fmt: skip
    table = common.print_table(
        "Scale: enqueue + send into smtp-sink (4 connections, sender processes = cores)",
        ["database", "subscribers", "enqueue s", "msg/s", "send s", "worker peak RSS MB",
         "sender peak RSS MB"],
        rows,
    )  # fmt: skip
    common.save_results("scale", {"results": results, "table": table})
    return {"results": results, "table": table}
