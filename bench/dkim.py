"""DKIM on and the fixed cost: marginal send rates against smtp-source, and `digest send`'s start.

For each database and each case (DKIM off, RSA-2048, RSA-2048 + Ed25519), with 4
connections: send the digest (about 20 KB) to N1 and then to N2 subscribers; the marginal
rate is (N2 - N1) / (t2 - t1), so the start-up cost drops out, and it is compared with
smtp-source's marginal rate for the same sizes, message size and connections in the same run.

The fixed cost: ``flask --app wsgi digest send`` of a built issue (its preflight stored by
the build) to a handful of subscribers, and ``flask --app wsgi --help``, each as a new process
the way an operator runs them, less the interpreter's own start (``python -c pass``).
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import common
from bench.throughput import run_ours, run_smtp_source

CASES = ("off", "rsa", "rsa+ed25519")
CONNECTIONS = 4


def dkim_settings(case: str, keys: Path) -> dict:
    """The MAILER_DKIM_* settings of ``case`` (keys made once under ``keys``)."""
    from mailer.delivery.message import dkim

    if case == "off":
        return {}
    rsa_path, ed_path = keys / "rsa.pem", keys / "ed25519.pem"
    if not rsa_path.exists():
        dkim.write_private_key(rsa_path, dkim.generate_private_key())
        dkim.write_private_key(ed_path, dkim.generate_ed25519_key())
    settings = {
        "MAILER_DKIM_DOMAIN": "example.com",
        "MAILER_DKIM_SELECTOR": "bench",
        "MAILER_DKIM_PRIVATE_KEY": str(rsa_path),
    }
    if case == "rsa+ed25519":
        settings["MAILER_DKIM_ED25519_SELECTOR"] = "bench-ed"
        settings["MAILER_DKIM_ED25519_PRIVATE_KEY"] = str(ed_path)
    return settings


def marginal(n1: int, t1: float, n2: int, t2: float) -> float:
    """Messages per second between two runs of n1 and n2 messages."""
    return (n2 - n1) / max(t2 - t1, 1e-9)


def bench_database(kind: str, n1: int, n2: int, keys: Path) -> dict:
    """Every case on one database; returns the figures."""
    from mailer import create_app

    port = common.free_port()
    result: dict = {"database": kind, "n1": n1, "n2": n2, "cases": []}
    with common.database(kind) as url, common.smtp_sink(port):
        instance = Path(tempfile.mkdtemp(prefix="mailer-bench-instance-"))
        config = common.bench_config(url, port, instance, MAILER_SMTP_CONNECTIONS=CONNECTIONS)
        app = create_app(config)
        common.create_schema(app)
        result["size_bytes"] = size = common.build_digest(app)
        times: dict = {case: {} for case in CASES}
        source: dict = {}
        for n, added in ((n1, n1), (n2, n2 - n1)):
            common.generate_subscribers(app, added, domain=f"n{n}.example.net")
            for case in CASES:
                case_app = create_app({**config, **dkim_settings(case, keys)})
                times[case][n] = run_ours(case_app, n)["send_s"]
                with case_app.app_context():
                    from mailer.extensions import db

                    db.engine.dispose()
            source[n] = run_smtp_source(port, n, CONNECTIONS, size)["send_s"]
        theirs = marginal(n1, source[n1], n2, source[n2])
        for case in CASES:
            ours = marginal(n1, times[case][n1], n2, times[case][n2])
            row = {"case": case, "ours_msgs_per_s": round(ours, 1),
                   "smtp_source_msgs_per_s": round(theirs, 1), "ratio": round(ours / theirs, 2),
                   "send_s": times[case]}  # fmt: skip
            result["cases"].append(row)
            print(f"{kind} DKIM {case}: {row}", flush=True)
        result["fixed_cost"] = fixed_cost(config, app, keys)
        print(f"{kind} fixed cost: {result['fixed_cost']}", flush=True)
        with app.app_context():
            from mailer.extensions import db

            db.engine.dispose()
    return result


def _environment(config: dict) -> dict:
    # The same settings as the environment variables an operator sets (config.py reads them).
    env = {k: v for k, v in os.environ.items() if k != "FLASK_DEBUG"}
    for name, value in config.items():
        if name.startswith("MAILER_") or name == "SECRET_KEY":
            env[name] = str(value)
    env["DATABASE_URL"] = config["SQLALCHEMY_DATABASE_URI"]
    env["PYTHONPATH"] = str(common.ROOT)
    return env


def _best_of(command: list[str], env: dict, repeat: int, before=None) -> float:
    best = float("inf")
    for _ in range(repeat):
        if before is not None:
            before()
        started = time.perf_counter()
        subprocess.run(command, cwd=common.ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - started)
    return best


def fixed_cost(config: dict, app, keys: Path, subscribers: int = 5, repeat: int = 3) -> dict:
    """Seconds of ``digest send`` (RSA DKIM on) to ``subscribers`` and of ``--help``, less the
    interpreter's start; the issue's preflight is stored first, as ``digest build`` does."""
    from sqlalchemy import select, text

    from mailer.digest import preflight
    from mailer.extensions import db
    from mailer.models import Issue

    with app.app_context():
        db.session.execute(text("DELETE FROM delivery"))
        db.session.execute(text(f"DELETE FROM subscriber WHERE id > {int(subscribers)}"))
        issue = db.session.scalars(select(Issue)).one()
        preflight.stored_findings(issue, app.config)
        db.session.commit()
        db.session.remove()

    def reset() -> None:
        with app.app_context(), db.engine.begin() as conn:
            conn.execute(text("DELETE FROM delivery"))
            conn.execute(text("UPDATE issue SET status = 'draft', sent_at = NULL"))

    env = _environment({**config, **dkim_settings("rsa", keys)})
    flask = [sys.executable, "-m", "flask", "--app", "wsgi"]
    python = _best_of([sys.executable, "-c", "pass"], env, repeat)
    send = _best_of([*flask, "digest", "send", "1"], env, repeat, before=reset)
    helps = _best_of([*flask, "--help"], env, repeat)
    return {
        "python_start_s": round(python, 3),
        "digest_send_beyond_start_s": round(send - python, 3),
        "help_s": round(helps, 3),
        "subscribers": subscribers,
    }


def main(argv: list[str] | None = None) -> dict:
    """Run the DKIM benchmark; print the table and save bench/results/dkim-*.json."""
    parser = argparse.ArgumentParser(prog="python -m bench dkim")
    parser.add_argument("--n1", type=int, default=5_000, help="the smaller list")
    parser.add_argument("--n2", type=int, default=15_000, help="the larger list")
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    args, _unknown = parser.parse_known_args(argv)
    kinds = ("sqlite", "postgresql") if args.db == "both" else (args.db,)
    keys = Path(tempfile.mkdtemp(prefix="mailer-bench-keys-"))
    results = [bench_database(kind, args.n1, args.n2, keys) for kind in kinds]
    rows = []
    for result in results:
        for case in result["cases"]:
            ours, theirs = case["ours_msgs_per_s"], case["smtp_source_msgs_per_s"]
            rows.append([result["database"], f"DKIM {case['case']}", f"{ours:,.0f}",
                         f"{theirs:,.0f}", f"{case['ratio']:.2f}"])  # fmt: skip
        cost = result["fixed_cost"]
        rows.append([result["database"], "fixed cost of `digest send` (s)",
                     f"{cost['digest_send_beyond_start_s']:.2f}", "-", "-"])  # fmt: skip
        rows.append([result["database"], "`flask --help` (s)", f"{cost['help_s']:.2f}", "-", "-"])
    size = results[0]["size_bytes"]
    table = common.print_table(
        f"DKIM and fixed cost: marginal rate {args.n1:,} -> {args.n2:,} messages of "
        f"{size / 1024:.1f} KB, {CONNECTIONS} connections, into smtp-sink",
        ["database", "case", "ours msg/s", "smtp-source msg/s", "ratio"],
        rows,
    )
    common.save_results("dkim", {"results": results, "table": table})
    return {"results": results, "table": table}
