"""What the digest says and how: escaping, markers, layout, text part, size, lint-email."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mailer.digest import build
from mailer.digest.plaintext import cut, display_width, html_to_text, wrap
from mailer.digest.preflight import check_issue
from mailer.digest.render import (
    RECIPIENT_MARKER,
    SUMMARY_COLUMNS,
    TEXT_WIDTH,
    UNSUBSCRIBE_URL_MARKER,
    fill_web_version,
)
from mailer.templating import RenderedMail, render_mail
from tests.conftest import ROOT, missing

LINT_DIR = ROOT / "tools" / "email-lint"
JAPANESE = (
    "東京都は来年四月から、子育て世帯向けの家賃補助を拡充すると発表しました。"
    "対象は都内に住む十八歳未満の子どもがいる世帯で、申請はオンラインで受け付けます。"
)


def body_of(html: str) -> str:
    return html[html.index("<body") :]


# --- escaping and sanitizing ----------------------------------------------------------------


def test_title_with_ampersand_tags_and_entities_is_escaped_once(session, make_item):
    make_item(title="Tom & Jerry <b>bold</b> &amp; AT&amp;T in Tōkyō")
    session.commit()

    issue = build.build_issue(session, period="2026-W49")

    assert "Tom &amp; Jerry &lt;b&gt;bold&lt;/b&gt; &amp; AT&amp;T in Tōkyō" in issue.html
    assert "&amp;amp;" not in issue.html and "&amp;lt;" not in issue.html
    assert "<b>bold" not in issue.html
    assert "Tom & Jerry <b>bold</b> & AT&T in Tōkyō" in issue.text
    assert "&amp;" not in issue.text
    assert issue.subject.endswith(": Tom & Jerry <b>bold</b> & AT&T in Tōkyō")


def test_hostile_summary_and_link_come_out_clean(session, make_item):
    make_item(
        title="Hostile item",
        link="javascript:alert('link')",
        summary_html=(
            "<script>alert('script')</script><style>body{display:none}</style>"
            "<iframe src='https://evil.example/'>frame text</iframe>"
            "<p onclick=\"alert('click')\">Safe words stay.</p>"
            "<a href=\"javascript:alert('href')\">a link</a>"
        ),
    )
    session.commit()

    issue = build.build_issue(session, period="2026-W49")

    for part in (body_of(issue.html), issue.text):
        assert "Safe words stay." in part
        for bad in (
            "alert",
            "<script",
            "<style",
            "<iframe",
            "onclick",
            "javascript:",
            "frame text",
        ):
            assert bad not in part
    assert "a link" in issue.text  # the link's words stay, its target goes
    # No link at all rather than a javascript: one.
    assert re.search(r'<h3 class="item-title" style="[^"]*">Hostile item</h3>', issue.html)


# --- markers and footer ---------------------------------------------------------------------


def test_markers_survive_jinja_and_css_inline_in_the_footer(session, make_item):
    make_item()
    session.commit()

    issue = build.build_issue(session, period="2026-W49")

    assert f'href="{UNSUBSCRIBE_URL_MARKER}"' in issue.html
    assert f"You receive this because {RECIPIENT_MARKER} subscribed" in issue.html
    assert f"\n{UNSUBSCRIBE_URL_MARKER}\n" in issue.text  # on its own line, never wrapped
    assert RECIPIENT_MARKER in issue.text
    for part in (issue.html, issue.text):
        assert "https://news.example.com/archive/1" in part
        assert "1-1 Example-cho, Chiyoda-ku, Tokyo 100-0001, Japan" in part
    assert ">View in browser</a>" in issue.html and ">Unsubscribe</a>" in issue.html
    assert "\n-- \n" in issue.text  # RFC 3676 signature separator


@pytest.mark.nodb
def test_fill_web_version_replaces_both_markers():
    text = f"You receive this because {RECIPIENT_MARKER} subscribed. {UNSUBSCRIBE_URL_MARKER}"
    assert fill_web_version(text, "https://news.example.com/") == (
        "You receive this because you subscribed. https://news.example.com/"
    )


# --- layout ---------------------------------------------------------------------------------


def test_layout_is_a_600px_fluid_table_with_dark_mode_meta_and_hidden_preheader(session, make_item):
    make_item(title="First headline")
    make_item(title="Second headline")
    session.commit()

    issue = build.build_issue(session, period="2026-W49")

    assert '<meta name="color-scheme" content="light dark">' in issue.html
    assert '<meta name="supported-color-schemes" content="light dark">' in issue.html
    (container,) = re.findall(r'<table class="container"[^>]*>', issue.html)
    assert 'width="600"' in container and "width:100%;max-width:600px" in container
    assert issue.preheader == "2 stories this week: Second headline · First headline"
    assert re.search(
        r'<div class="preheader" style="max-height:0;max-width:0;overflow:hidden;mso-hide:all">'
        r"2 stories this week: Second headline · First headline</div>",
        issue.html,
    )
    # Every rule was inlined: no <style> block is left.
    assert re.findall(r"<style[^>]*>(.*?)</style>", issue.html, re.DOTALL) in ([], [""])
    # Colours are pairs: the light value, then light-dark(light, dark) for clients that
    # follow the reader's scheme; text always sits on an explicit background in both.
    assert "background-color:#ffffff;background-color:light-dark(#ffffff,#1b1f24)" in issue.html
    assert "color:#1d2430;color:light-dark(#1d2430,#e8eaed)" in issue.html
    assert re.search(r'<p class="brand" style="[^"]*">Japan Weekly</p>', issue.html)
    assert "<img" not in issue.html
    # The item's title is its only link (one accessible name per story, no "Read more").
    assert re.search(r'">First headline</a></h3>', issue.html) and "Read more" not in issue.html


def test_logo_only_when_configured_with_alt_and_size(app, session, make_item):
    app.config["MAILER_LOGO_URL"] = "https://news.example.com/logo.png"
    make_item()
    session.commit()

    issue = build.build_issue(session, period="2026-W49")

    assert (
        '<img src="https://news.example.com/logo.png" alt="Japan Weekly" width="160" height="40"'
    ) in issue.html


def test_openings_show_company_location_and_type_where_known(session, make_item):
    make_item("openings", title="Data engineer", company="Acme KK", location="Osaka",
              job_type="Full-time")  # fmt: skip
    make_item("openings", title="Translator", company="Sakura Docs")
    session.commit()

    issue = build.build_issue(session, period="2026-W49")

    assert '<p class="meta"' in issue.html
    # Each fact kept on one line (white-space:nowrap), the facts side by side.
    fact = '<strong class="fact" style="white-space:nowrap">{}</strong>'
    facts = " · ".join(fact.format(v) for v in ("Acme KK", "Osaka", "Full-time"))
    assert facts + "</p>" in issue.html
    assert fact.format("Sakura Docs") + "</p>" in issue.html
    assert "Data engineer\nhttps://example.com/openings/1\nAcme KK · Osaka · Full-time\n" in (
        issue.text
    )
    assert "Translator\nhttps://example.com/openings/2\nSakura Docs\n" in issue.text


# --- text part ------------------------------------------------------------------------------


def test_text_part_is_written_for_reading(session, make_item):
    long_url = "https://example.com/" + "very-long-path-segment/" * 6 + "story?id=1&lang=ja"
    make_item(title="English headline that is long enough to need wrapping " * 2, link=long_url,
              summary_html="<p>" + "Readable words in a summary. " * 20 + "</p>",
              source_name="Japan Times")  # fmt: skip
    make_item(title="東京の家賃補助、来年四月から拡充", summary_html=f"<p>{JAPANESE * 3}</p>")
    session.commit()

    issue = build.build_issue(session, period="2026-W49")
    lines = issue.text.splitlines()

    assert long_url in lines  # the URL on a line of its own, unbroken
    for line in lines:
        if not line.startswith("http"):
            assert display_width(line) <= TEXT_WIDTH, line
    assert "Japan Times · 1 Dec 2026" in lines
    assert "NEWS (2)" in lines and "JOB OPENINGS (0)" in lines
    japanese = [line for line in lines if "家賃" in line or "申請" in line]
    assert len(japanese) >= 3 and all(display_width(line) <= TEXT_WIDTH for line in japanese)
    squeezed = "".join(issue.text.split())
    assert JAPANESE[:60] in squeezed  # wrapped between characters, none lost or split
    assert issue.text.count("https://example.com/news/2") == 1


@pytest.mark.nodb
def test_wrap_breaks_japanese_between_characters_never_words_or_urls():
    url = "https://example.com/" + "x" * 100
    lines = wrap(f"Read this {url} and then 東京都は、新しい政策を発表しました。", 20)
    assert url in lines
    assert lines[0] == "Read this"
    assert all(display_width(line) <= 20 for line in lines if line != url)
    assert not any(line.startswith(("、", "。")) for line in lines)  # kinsoku: no leading 。
    assert "".join(lines[2:]).replace(" ", "") == "andthen東京都は、新しい政策を発表しました。"
    # A run longer than a line that is no URL (a hash, a row of dashes) is cut, not kept.
    assert wrap("id " + "f" * 50, 20) == ["id", "f" * 20, "f" * 20, "f" * 10]


@pytest.mark.nodb
def test_cut_is_character_safe_and_fixed_length():
    japanese = cut(JAPANESE * 4, SUMMARY_COLUMNS)
    assert japanese.endswith("…") and display_width(japanese) <= SUMMARY_COLUMNS
    assert JAPANESE.startswith(japanese[:-1][: len(JAPANESE)])
    latin = cut("word " * 100, 30)
    assert latin == "word word word word word word…" and display_width(latin) == 30
    assert cut("cafe\u0301 " * 10, 12) == "cafe\u0301 cafe\u0301…"
    assert cut("short", 30) == "short"


@pytest.mark.nodb
def test_html_to_text_drops_code_and_decodes_entities_once():
    fragment = "<p>A&amp;B &amp;amp; C</p><script>x()</script><style>p{}</style><p>Next<br>line</p>"
    assert html_to_text(fragment) == "A&B &amp; C Next line"


def test_subject_is_one_line_and_of_sane_length(session, make_item):
    make_item(title="A very long headline\r\nBcc: victim@example.com " + "word " * 40)
    session.commit()

    issue = build.build_issue(session, period="2026-W49")

    assert "\n" not in issue.subject and "\r" not in issue.subject
    assert len(issue.subject) <= 70 and issue.subject.endswith("word…")
    assert issue.subject.startswith("Japan Weekly: A very long")


def test_render_mail_returns_a_frozen_triplet(app):
    with app.app_context():
        mail = render_mail(
            "digest", newsletter="X\nY", label="Week 1, 2026", subject="X\nY — a\rb",
            intro="", preheader="",
            sections=[], base_url="https://n.example", site_host="n.example",
            archive_url="https://n.example/archive/1", logo_url="", logo_width=1,
            logo_height=1, postal_address="Addr", unsubscribe_url="U", recipient="R",
            text_width=72, wrap=wrap,
        )  # fmt: skip
    assert isinstance(mail, RenderedMail)
    assert mail.subject == "X Y — a b"
    assert mail.text.endswith("Addr\n")
    with pytest.raises(AttributeError):
        mail.subject = "changed"


# --- size -----------------------------------------------------------------------------------


def test_sixty_items_with_long_summaries_stay_under_100_kb(app, session, make_item):
    app.config["MAILER_DIGEST_ITEMS_PER_SECTION"] = 30
    long_summary = "<p>" + ("A long summary sentence about jobs in Japan. " * 120) + "</p>"
    for n in range(30):
        make_item(
            title=f"News headline number {n} about Tokyo and Osaka",
            link=f"https://news.example.org/2026/12/01/a-long-article-slug-{n}",
            summary_html=long_summary + JAPANESE * 20,
            source_name="Japan Times",
        )
        make_item("openings", title=f"Senior software engineer {n} (Python, Go)",
                  link=f"https://jobs.example.org/openings/senior-software-engineer-{n}",
                  summary_html=JAPANESE * 20 + long_summary, company="Acme KK",
                  location="Tokyo", job_type="Full-time")  # fmt: skip
    session.commit()

    issue = build.build_issue(session, period="2026-W49")
    size = len(issue.html.encode("utf-8"))
    print(f"\n60-item digest: {size} bytes of HTML ({size / 1024:.1f} KB)")

    assert len(issue.items) == 60
    assert size < 100 * 1024, f"60-item digest HTML is {size} bytes"
    assert not [f for f in check_issue(issue, app.config, spamassassin=False) if f.level == "error"]
    assert max(len(line.encode()) for line in issue.html.splitlines()) < 998
    assert max(len(line.encode()) for line in issue.text.splitlines()) < 998


# --- lint-email (doiuse-email, offline) -----------------------------------------------------


def _lint_tools() -> tuple[str, str]:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        missing("node and npm are needed for the HTML-email compatibility check")
    if not (LINT_DIR / "node_modules" / "doiuse-email").is_dir():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                       cwd=LINT_DIR, check=True)  # fmt: skip
    return node, npm


@pytest.mark.nodb
def test_lint_email_reports_no_error_for_gmail_apple_mail_and_outlook_com(tmp_path):
    node, _npm = _lint_tools()
    html = tmp_path / "digest.html"
    env = {**os.environ, "MAILER_INSTANCE_DIR": str(tmp_path / "instance")}
    rendered = subprocess.run(
        [sys.executable, str(LINT_DIR / "render_sample.py"), str(html)],
        capture_output=True, text=True, env=env, cwd=ROOT,
    )  # fmt: skip
    assert rendered.returncode == 0, rendered.stderr
    assert "<img" in html.read_text() and "Sakura Docs" in html.read_text()

    result = _check(node, html)

    print("\n" + result.stdout.splitlines()[-1])
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"doiuse-email: 0 errors, \d+ warnings", result.stdout)
    for client in ("gmail.mobile-webmail", "apple-mail.ios", "outlook.outlook-com"):
        assert client in result.stdout.splitlines()[-1]


@pytest.mark.nodb
def test_lint_email_fails_on_css_a_client_does_not_support(tmp_path):
    node, _npm = _lint_tools()
    page = tmp_path / "bad.html"
    page.write_text('<html><body><div style="display:none">hidden</div></body></html>')

    result = _check(node, page)

    assert result.returncode == 1
    assert "error: `display:none` is not supported by `gmail.mobile-webmail`" in result.stdout


def _check(node: str, page: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [node, str(LINT_DIR / "check.mjs"), str(page)], capture_output=True, text=True
    )


@pytest.mark.nodb
def test_lint_tooling_is_pinned():
    package = json.loads((LINT_DIR / "package.json").read_text())
    lock = json.loads((LINT_DIR / "package-lock.json").read_text())
    assert package["dependencies"] == {"doiuse-email": "0.4.1"}
    assert lock["packages"]["node_modules/doiuse-email"]["version"] == "0.4.1"
