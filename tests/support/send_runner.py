"""Run ``send_pending`` once in its own process (the crash and concurrent-worker tests).

Usage: python send_runner.py '<json config>'; the JSON holds create_app overrides plus
``_FROZEN`` (ISO time to freeze mailer.clock at) and ``_START_FILE`` (print "ready", then wait
until that file exists, so that several runners start sending together).
"""

import json
import sys
import time
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

from mailer import clock, create_app
from mailer.delivery.dispatch import send_pending


def main() -> None:
    """Parse the config, wait for the start signal if asked, send, print the summary."""
    config = json.loads(sys.argv[1])
    frozen = config.pop("_FROZEN", None)
    start_file = config.pop("_START_FILE", None)
    if frozen:
        clock.freeze(datetime.fromisoformat(frozen))
    app = create_app(config)
    if start_file:
        print("ready", flush=True)
        while not Path(start_file).exists():
            time.sleep(0.01)
    summary = send_pending(app, factory=create_app)
    print(json.dumps(asdict(summary), default=str), flush=True)


if __name__ == "__main__":
    main()
