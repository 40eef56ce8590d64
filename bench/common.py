"""Shared parts of the benchmarks: workspaces (SQLite file or a PostgreSQL database made for
the run), generated subscribers, the digest from the shared feeds, Postfix's smtp-sink, and
the results table / JSON file."""

import json
import os
import platform
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import time
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
FEEDS = ROOT.parent / "shared" / "data" / "feeds"
PG_ADMIN_URL = os.environ.get(
    "MAILER_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
SMTP_SINK = "/usr/sbin/smtp-sink"
SMTP_SOURCE = "/usr/sbin/smtp-source"
NEWS_FEEDS = ("wp-rss2-techcrunch-wordpresscom.xml", "ja-rss1.0-tdiary-eucjp.rdf")
OPENING_FEEDS = ("rss1.0-rdf-craigslist.xml",)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def database(kind: str):
    """Yield a SQLAlchemy URL of an empty database of ``kind`` ("sqlite" or "postgresql")."""
    if kind == "sqlite":
        folder = Path(tempfile.mkdtemp(prefix="mailer-bench-"))
        try:
            yield f"sqlite:///{folder / 'bench.sqlite3'}"
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    name = f"mailer_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def bench_config(url: str, smtp_port: int, instance: Path, **overrides) -> dict:
    """create_app overrides for a benchmark run (production-like, no test shortcuts)."""
    config = {
        "TESTING": False,
        "SQLALCHEMY_DATABASE_URI": url,
        "SECRET_KEY": "bench-secret-key-not-for-production",
        "MAILER_BASE_URL": "https://news.example.com",
        "MAILER_FROM": "Japan Weekly <newsletter@example.com>",
        "MAILER_SMTP_HOST": "127.0.0.1",
        "MAILER_SMTP_PORT": smtp_port,
        "MAILER_SMTP_TIMEOUT": 30.0,
        "MAILER_SENDER_PROCESSES": os.cpu_count() or 1,
        "MAILER_SIGNING_PROCESSES": os.cpu_count() or 1,  # as the production default
        "MAILER_INSTANCE_DIR": str(instance),
        # Six items per section make the digest from the shared feeds about 19 KB (the
        # issue asks for about 20 KB for the throughput figures); the default ten, 30 KB.
        "MAILER_DIGEST_ITEMS_PER_SECTION": 6,
    }
    config.update(overrides)
    return config


def create_schema(app) -> None:
    """Create every table (the benchmark databases start empty)."""
    from mailer.extensions import db

    with app.app_context():
        db.create_all()
        db.engine.dispose()


def generate_subscribers(app, count: int, domain: str = "example.net") -> float:
    """Insert ``count`` confirmed subscribers in the database itself; return seconds taken."""
    from mailer.extensions import db

    started = time.perf_counter()
    with app.app_context(), db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            series = f"SELECT x FROM generate_series(1, {int(count)}) AS x"
        else:
            series = (
                f"WITH RECURSIVE seq(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM seq "
                f"WHERE x < {int(count)}) SELECT x FROM seq"
            )
        conn.execute(
            text(
                "INSERT INTO subscriber (email, status, version, source, created_at, "
                "confirmations_that_day, hard_bounces, soft_failures_in_row) "
                f"SELECT 's' || x || '@{domain}', 'confirmed', 1, 'bench', :now, 0, 0, 0 "
                f"FROM ({series}) AS numbers"
            ),
            {"now": datetime.now(UTC).replace(tzinfo=None)},
        )
    with app.app_context():
        db.engine.dispose()
    return time.perf_counter() - started


def build_digest(app) -> int:
    """Build issue #1 from the shared feeds (news + openings); return its message size."""
    from mailer.content import feeds
    from mailer.delivery import message as mime
    from mailer.digest import build
    from mailer.extensions import db

    # The shared feeds are snapshots of the past: keep their entries out of the new-feed
    # backlog, or the issue would have none.
    app.config["MAILER_FEED_BACKLOG_DAYS"] = 365 * 100
    with app.app_context():
        for names, section in ((NEWS_FEEDS, "news"), (OPENING_FEEDS, "openings")):
            for name in names:
                feed = feeds.add_feed(db.session, str(FEEDS / name), section, allow_local=True)
                feeds.refresh_feed(db.session, feed)
        issue = build.build_issue(db.session, force=True)
        db.session.commit()
        size = len(
            mime.build_message(issue, 1, "s1@example.net", "https://x/unsubscribe/t", app.config)
        )
        db.session.remove()
        db.engine.dispose()
    return size


@contextmanager
def smtp_sink(port: int):
    """Run Postfix's smtp-sink on 127.0.0.1:``port`` (accepts and discards every message)."""
    command = [SMTP_SINK]
    if os.geteuid() == 0:
        command += ["-u", "nobody"]  # smtp-sink refuses to run as root without it
    process = subprocess.Popen(
        [*command, f"127.0.0.1:{port}", "1024"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_listening(port, process)
        yield process
    finally:
        process.terminate()
        process.wait()


def _wait_listening(port: int, process) -> None:
    for _ in range(500):
        if process.poll() is not None:
            raise RuntimeError(f"smtp-sink exited: {process.stderr.read().decode()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return
        except OSError:
            time.sleep(0.01)
    raise RuntimeError(f"smtp-sink did not listen on port {port}")


def machine() -> dict:
    """What the figures were measured on."""
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    except OSError:
        mem_kb = 0
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": _pg_version(),
    }


def _pg_version() -> str:
    try:
        engine = create_engine(PG_ADMIN_URL)
        with engine.connect() as conn:
            version = conn.scalar(text("SHOW server_version"))
        engine.dispose()
        return str(version)
    except Exception:  # noqa: BLE001 - no PostgreSQL: the report says so
        return "not reachable"


def print_table(title: str, headers: list[str], rows: list[list]) -> str:
    """Print (and return) a Markdown table."""
    lines = [f"### {title}", "", "| " + " | ".join(headers) + " |"]
    lines.append("|" + "|".join("---" for _ in headers) + "|")
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    table = "\n".join(lines)
    print(table, flush=True)
    return table


def save_results(name: str, data: dict) -> Path:
    """Write ``data`` (plus the machine) to bench/results/NAME-TIMESTAMP.json."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"{name}-{stamp}.json"
    path.write_text(json.dumps({"machine": machine(), **data}, indent=2, default=str) + "\n")
    print(f"saved {path.relative_to(ROOT)}", flush=True)
    return path
