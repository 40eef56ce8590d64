"""The scale benchmark's worker process: enqueue issue #1 and send it; print JSON figures.

Run as ``python -m bench.scale_worker '<create_app overrides as JSON>'``. Peak RSS is the
kernel's high-water mark (``getrusage``): of this process, and of the largest sender process
it started (RUSAGE_CHILDREN reports the maximum over waited-for children).
"""

import json
import resource
import sys
import time


def main() -> None:
    """Enqueue and send issue #1, then print the timings and peak RSS as one JSON line."""
    from mailer import create_app
    from mailer.delivery import dispatch as engine
    from mailer.extensions import db

    app = create_app(json.loads(sys.argv[1]))
    started = time.perf_counter()
    with app.app_context():
        _issue, queued = engine.start_issue(db.session, 1)
        db.session.remove()
    enqueued = time.perf_counter()
    summary = engine.send_pending(app, factory=create_app)
    finished = time.perf_counter()
    mine = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    figures = {
        "queued": queued,
        "sent": summary.sent,
        "errors": summary.errors,
        "enqueue_s": round(enqueued - started, 2),
        "send_s": round(finished - enqueued, 2),
        "msgs_per_s": round(summary.sent / (finished - enqueued), 1),
        "worker_peak_rss_mb": round(mine, 1),
        "sender_peak_rss_mb": round(children, 1),
    }
    print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
