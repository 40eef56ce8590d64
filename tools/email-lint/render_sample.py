"""Render the sample digest to a file: ``python tools/email-lint/render_sample.py OUT.html``.

Used by ``make lint-email`` (and tests/digest/test_email_content.py) before doiuse-email reads it.
The app is created with an in-memory SQLite database: rendering needs no stored data.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the project root

from mailer import clock, create_app  # noqa: E402 - after the path set-up above
from mailer.digest.sample import render_sample  # noqa: E402


def main(argv: list[str]) -> int:
    """Write the sample's HTML (and, if a second path is given, its text part)."""
    if not argv:
        print("usage: render_sample.py OUT.html [OUT.txt]", file=sys.stderr)
        return 2
    app = create_app(
        {"SQLALCHEMY_DATABASE_URI": "sqlite://", "MAILER_LOGO_URL": "https://example.com/logo.png"}
    )
    with app.app_context():
        mail = render_sample(app.config, clock.now())
    for path, content in zip(argv, (mail.html, mail.text), strict=False):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(content, encoding="utf-8")
        print(f"wrote {path} ({len(content.encode('utf-8'))} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
