"""A sample digest rendered without a database, for ``make lint-email`` and template work.

``tools/email-lint/render_sample.py OUT.html [OUT.txt]`` renders an issue of the items below
(written for this purpose: news and openings in Japan, English and Japanese, one item with
markup and entities in its title) with a logo configured, so that every element the
template can produce is in the file that the HTML-email checker reads.
"""

from collections.abc import Mapping
from datetime import datetime, timedelta

from ..models import Item, Section
from .render import render_issue, sections_view

_NEWS = (
    ("Tokyo raises its minimum wage to 1,226 yen from October",
     "https://example.com/news/tokyo-minimum-wage",
     "<p>The new rate applies to every employer in the prefecture, part-time staff "
     "included. Economists expect <strong>small shops</strong> to feel it most.</p>"),
    ("紅葉シーズン：京都・嵐山が見頃に",
     "https://example.com/news/arashiyama-momiji",
     "<p>桂川沿いのカエデが今週見頃を迎えました。竹林の小径は午前十時には混み合うため、"
     "早めの訪問がおすすめです。</p>"),
    ("Shinkansen & airport rail: what changes in the new timetable",
     "https://example.com/news/timetable-2026?ref=digest&issue=1",
     "<p>More Nozomi trains per hour &amp; a faster Haneda link.</p><ul><li>Tokaido line: "
     "12 trains an hour</li><li>Haneda: 18 minutes from Tokyo station</li></ul>"),
)  # fmt: skip
_OPENINGS = (
    ("Senior Python developer (remote within Japan)", "https://example.com/jobs/python",
     "<p>Build the data pipeline of a logistics start-up. Japanese N3 or better.</p>",
     "Kaisoku Logistics KK", "Osaka or remote", "Full-time", "¥7–9M a year"),
    ("日英翻訳者（契約）", "https://example.com/jobs/translator",
     "<p>技術文書の日英翻訳。週三日から応相談。</p>", "Sakura Docs", "Fukuoka", "Contract", None),
)  # fmt: skip


def sample_items(now: datetime) -> dict[str, list[Item]]:
    """Return transient (never stored) items per section, newest first."""
    news = [
        Item(section=Section.NEWS, title=title, link=link, summary_html=summary,
             source_name="Japan Weekly sample", published_at=now - timedelta(hours=i))
        for i, (title, link, summary) in enumerate(_NEWS)
    ]  # fmt: skip
    openings = [
        Item(section=Section.OPENINGS, title=title, link=link, summary_html=summary,
             company=company, location=location, job_type=job_type, pay=pay,
             source_name="Japan Weekly jobs", published_at=now - timedelta(hours=i))
        for i, (title, link, summary, company, location, job_type, pay) in enumerate(_OPENINGS)
    ]  # fmt: skip
    return {Section.NEWS: news, Section.OPENINGS: openings}


def render_sample(config: Mapping, now: datetime):
    """Render the sample issue (number 1, the ISO week of ``now``); needs an app context."""
    year, week, _ = now.isocalendar()
    sections = sections_view(sample_items(now), config["MAILER_TIMEZONE"])
    mail, _preheader = render_issue(
        config, number=1, period=f"{year}-W{week:02d}", sections=sections
    )
    return mail
