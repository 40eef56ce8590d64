"""Throughput: our sender vs Postfix's smtp-source, both into smtp-sink, and the naive way.

For each database and 1, 4 and 16 connections: enqueue N deliveries of the digest built
from the shared feeds (about 20 KB) and time ``send_pending`` (sender processes, pooled
connections, every delivery recorded in the ledger); then time ``smtp-source -d`` sending N
messages of the same size over the same number of sessions. The naive baseline builds an
``EmailMessage`` and opens a new SMTP connection per message (as Flask-Mail users do).
"""

import argparse
import smtplib
import subprocess
import tempfile
import time
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

from bench import common

CONNECTIONS = (1, 4, 16)


def run_ours(app, n: int) -> dict:
    """Reset the ledger, enqueue issue #1 for every subscriber and send it; return timings."""
    from sqlalchemy import text

    from mailer import create_app
    from mailer.delivery import dispatch as engine
    from mailer.extensions import db

    with app.app_context():
        with db.engine.begin() as conn:
            conn.execute(text("DELETE FROM delivery"))
            conn.execute(text("UPDATE issue SET status = 'draft', sent_at = NULL"))
        started = time.perf_counter()
        _issue, queued = engine.start_issue(db.session, 1)
        db.session.remove()
        enqueued = time.perf_counter()
    summary = engine.send_pending(app, factory=create_app)
    finished = time.perf_counter()
    if summary.sent != n or queued != n:
        raise RuntimeError(f"expected {n} sent, got {summary}")
    return {
        "enqueue_s": round(enqueued - started, 3),
        "send_s": round(finished - enqueued, 3),
        "msgs_per_s": round(n / (finished - enqueued), 1),
    }


def run_smtp_source(port: int, n: int, sessions: int, size: int) -> dict:
    """Time ``smtp-source -d`` (one connection per session, reused for every message)."""
    command = [
        common.SMTP_SOURCE, "-d", "-s", str(sessions), "-m", str(n), "-l", str(size),
        "-f", "newsletter@example.com", "-t", "reader@example.net", f"127.0.0.1:{port}",
    ]  # fmt: skip
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    elapsed = time.perf_counter() - started
    return {"send_s": round(elapsed, 3), "msgs_per_s": round(n / elapsed, 1)}


def run_naive(app, port: int, n: int) -> dict:
    """Build an EmailMessage and open a new connection per message, ``n`` times."""
    from sqlalchemy import select

    from mailer.extensions import db
    from mailer.models import Issue

    with app.app_context():
        issue = db.session.scalars(select(Issue)).one()
        subject, text_part, html_part = issue.subject, issue.text, issue.html
        db.session.remove()
    started = time.perf_counter()
    for index in range(n):
        message = EmailMessage()
        message["From"] = "Japan Weekly <newsletter@example.com>"
        message["To"] = f"s{index}@example.net"
        message["Subject"] = subject
        message["Date"] = format_datetime(time_now())
        message["Message-ID"] = make_msgid(domain="example.com")
        message["List-Unsubscribe"] = f"<https://news.example.com/unsubscribe/t{index}>"
        message.set_content(text_part)
        message.add_alternative(html_part, subtype="html")
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            client.send_message(message)
    elapsed = time.perf_counter() - started
    return {"n": n, "send_s": round(elapsed, 3), "msgs_per_s": round(n / elapsed, 1)}


def time_now():
    """Aware UTC now (for the naive messages' Date header)."""
    from mailer import clock

    return clock.now()


def bench_database(kind: str, n: int, naive_n: int, connections_list=CONNECTIONS,
                   processes: int | None = None) -> dict:  # fmt: skip
    """All runs on one database; returns the figures."""
    from mailer import create_app

    port = common.free_port()
    result: dict = {"database": kind, "n": n, "runs": []}
    with common.database(kind) as url, common.smtp_sink(port):
        instance = Path(tempfile.mkdtemp(prefix="mailer-bench-instance-"))
        overrides = {"MAILER_SENDER_PROCESSES": processes} if processes else {}
        app = create_app(common.bench_config(url, port, instance, **overrides))
        result["sender_processes"] = (
            1 if kind == "sqlite" else app.config["MAILER_SENDER_PROCESSES"]
        )
        common.create_schema(app)
        result["size_bytes"] = size = common.build_digest(app)
        common.generate_subscribers(app, n)
        for connections in connections_list:
            app.config["MAILER_SMTP_CONNECTIONS"] = connections
            ours = run_ours(app, n)
            theirs = run_smtp_source(port, n, connections, size)
            ratio = round(ours["msgs_per_s"] / theirs["msgs_per_s"], 2)
            result["runs"].append(
                {"connections": connections, "ours": ours, "smtp_source": theirs, "ratio": ratio}
            )
            print(f"{kind} {connections} conn.: ours {ours}, smtp-source {theirs}", flush=True)
        result["naive"] = run_naive(app, port, naive_n) if naive_n else None
        with app.app_context():
            from mailer.extensions import db

            db.engine.dispose()
    return result


def main(argv: list[str] | None = None) -> dict:
    """Run the throughput benchmark; print the table and save bench/results/throughput-*.json."""
    parser = argparse.ArgumentParser(prog="python -m bench throughput")
    parser.add_argument("--n", type=int, default=20_000, help="messages per run")
    parser.add_argument("--naive-n", type=int, default=1_000, help="messages for the naive way")
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--connections", default="1,4,16", help="comma-separated counts")
    parser.add_argument("--processes", type=int, default=None,
                        help="MAILER_SENDER_PROCESSES (default: the number of cores)")  # fmt: skip
    args, _unknown = parser.parse_known_args(argv)
    kinds = ("sqlite", "postgresql") if args.db == "both" else (args.db,)
    counts = tuple(int(c) for c in args.connections.split(","))
    results = [bench_database(kind, args.n, args.naive_n, counts, args.processes) for kind in kinds]
    rows = []
    for result in results:
        for run in result["runs"]:
            rows.append([
                f"{result['database']} ({result['sender_processes']} proc.)", run["connections"],
                f"{run['ours']['msgs_per_s']:,.0f}",
                f"{run['smtp_source']['msgs_per_s']:,.0f}", f"{run['ratio']:.2f}",
            ])  # fmt: skip
        if result["naive"]:
            four = next((r for r in result["runs"] if r["connections"] == 4), result["runs"][0])
            speedup = four["ours"]["msgs_per_s"] / result["naive"]["msgs_per_s"]
            result["speedup_over_naive_at_4"] = round(speedup, 1)
            rows.append([
                result["database"], "new one per message (naive)",
                f"{result['naive']['msgs_per_s']:,.0f}", "-", f"ours x{speedup:.0f}",
            ])  # fmt: skip
    size = results[0]["size_bytes"]
    table = common.print_table(
        f"Throughput: {args.n:,} messages of {size / 1024:.1f} KB into smtp-sink",
        ["database", "connections", "ours msg/s", "smtp-source msg/s", "ratio"],
        rows,
    )
    common.save_results("throughput", {"results": results, "table": table})
    return {"results": results, "table": table}
