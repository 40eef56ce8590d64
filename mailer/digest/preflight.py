"""Pre-send checks of an issue (preflight): every finding is an error or a warning.

Errors block a scheduled send (the delivery room and the admin refuse to start); warnings
are shown to the admin. The checks read the stored HTML and text only, so they work on a
built issue and on the admin's transient preview alike.
"""

import hashlib
import html
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from html.parser import HTMLParser
from urllib.parse import urlsplit

from .. import clock
from ..models import Issue, Section
from .render import MARKERS, PREFERENCES_URL_MARKER, SECTION_TITLES, UNSUBSCRIBE_URL_MARKER, inert
from .spamcheck import SpamCheckError, SpamReport, spam_score, spamassassin_path

# Bumped when a check changes, so that results stored by an older version are not reused.
CHECKS_VERSION = "1"
# The settings the checks read (the text part's footer, SpamAssassin's sample headers).
_SETTINGS_CHECKED = ("MAILER_FROM", "MAILER_BASE_URL", "MAILER_POSTAL_ADDRESS", "MAILER_LIST_ID")

KB = 1024
HTML_WARN_BYTES = 90 * KB  # Gmail clips a message body at about 102 KB and hides the rest,
HTML_ERROR_BYTES = 100 * KB  # footer (unsubscribe link) included
SPAM_WARN_SCORE = 2.0
SPAM_ERROR_SCORE = 5.0  # SpamAssassin's default "required" score
_UNSAFE_SCHEMES = frozenset({"javascript", "data", "vbscript", "file"})
_TEMPLATE_TAGS = ("{{", "{%", "{#", "@@")
_STYLE_BLOCK = re.compile(r"<style[^>]*>.*?</style>", re.DOTALL | re.IGNORECASE)
_IGNORED_IN_URL = re.compile(r"[\x00-\x20\x7f]")  # browsers skip these inside a scheme


@dataclass(frozen=True)
class Finding:
    """One preflight finding: ``level`` "error" or "warning", a stable ``code``, a message."""

    level: str
    code: str
    message: str


class _IssueScanner(HTMLParser):
    """Collect the links, images and item titles (per section) of a rendered issue."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []  # every href, src and action
        self.anchors: list[str] = []  # the href of each <a>
        self.images_without_alt = 0
        self.titles: dict[str, list[str]] = {}
        self._section: str | None = None
        self._title: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        values = dict(attrs)
        classes = (values.get("class") or "").split()
        for name in ("href", "src", "action"):
            if values.get(name) is not None:
                self.links.append(values[name])
        if tag == "a" and values.get("href"):
            self.anchors.append(values["href"].strip())
        if tag == "img" and "alt" not in values:
            self.images_without_alt += 1
        for cls in classes:
            if cls.startswith("section-") and cls[8:] in Section.ALL:
                self._section = cls[8:]
                self.titles.setdefault(self._section, [])
        if "item-title" in classes:
            self._title = []

    def handle_endtag(self, tag):
        if tag == "h3" and self._title is not None:
            self.titles.setdefault(self._section or "", []).append("".join(self._title))
            self._title = None

    def handle_data(self, data):
        if self._title is not None:
            self._title.append(data)


def check_issue(issue: Issue, config: Mapping, *, spamassassin: bool = True) -> list[Finding]:
    """Check a rendered issue before it is sent (issue 5, "Pre-send checks").

    Args:
        issue: a built or previewed issue (its ``html``, ``text`` and ``subject`` are read).
        config: the app config (MAILER_FROM, MAILER_BASE_URL, MAILER_POSTAL_ADDRESS).
        spamassassin: also score a sample with SpamAssassin when the program is installed
            (a few seconds the first time; cached per content).

    Returns:
        Findings, errors first; an empty list when all is well. Never raises for bad content.
    """
    scanner = _IssueScanner()
    scanner.feed(issue.html or "")
    scanner.close()
    findings = [
        *check_size(issue.html or ""),
        *check_links(scanner),
        *check_placeholders(issue),
        *check_text_part(issue, scanner, config),
        *check_sections(scanner),
    ]
    if spamassassin and spamassassin_path() is not None:
        findings.extend(check_spam(issue, config))
    return sorted(findings, key=lambda finding: finding.level != "error")


def blocking_errors(issue: Issue, config: Mapping) -> list[Finding]:
    """The findings of :func:`check_issue` (SpamAssassin included) that block a send: its
    errors. Every way of starting a send asks this (README, "Before a send"); the result
    stored with the issue is used when the issue has not changed (:func:`stored_findings`).
    """
    return [f for f in stored_findings(issue, config).findings if f.level == "error"]


@dataclass(frozen=True)
class Preflight:
    """An issue's preflight: its findings and SpamAssassin's score (None: not run)."""

    findings: list[Finding]
    spam_score: str | None


def preflight_key(issue: Issue, config: Mapping) -> str:
    """Return the SHA-256 (hex) of what :func:`check_issue` reads: the issue's subject, HTML
    and text, the settings it checks, whether SpamAssassin is installed, and the checks'
    version. Equal keys give equal findings."""
    parts = [CHECKS_VERSION, issue.subject or "", issue.html or "", issue.text or ""]
    parts += [str(config.get(name) or "") for name in _SETTINGS_CHECKED]
    parts.append("spamassassin" if spamassassin_path() is not None else "")
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()


def stored_findings(issue: Issue, config: Mapping) -> Preflight:
    """Return ``issue``'s preflight, from the stored result when it is still valid.

    Valid means stored with the same :func:`preflight_key`: the issue and the settings it
    depends on are unchanged. Otherwise the checks run now (SpamAssassin included, a few
    seconds) and the result is stored on the issue, which the caller commits. A SpamAssassin
    check that could not run is not stored, so that the next call tries again.
    """
    key = preflight_key(issue, config)
    if issue.preflight_key == key and issue.preflight:
        stored = json.loads(issue.preflight)
        findings = [Finding(**finding) for finding in stored["findings"]]
        return Preflight(findings, stored["spam_score"])
    findings = check_issue(issue, config)
    score = None
    if spamassassin_path() is not None:
        try:
            score = spam_score(issue, config).describe()  # cached by check_issue's run
        except SpamCheckError:
            return Preflight(findings, None)
    issue.preflight_key = key
    issue.preflight = json.dumps(
        {"findings": [asdict(f) for f in findings], "spam_score": score}, ensure_ascii=False
    )
    issue.preflight_at = clock.now()
    return Preflight(findings, score)


def check_size(html: str) -> list[Finding]:
    """Decoded HTML over 90 KB warns, over 100 KB errors (Gmail clips at about 102 KB)."""
    size = len(html.encode("utf-8"))
    kb = f"{size / KB:.1f} KB"
    if size > HTML_ERROR_BYTES:
        return [Finding("error", "html-size", f"HTML is {kb}; Gmail clips it past ~102 KB")]
    if size > HTML_WARN_BYTES:
        return [Finding("warning", "html-size", f"HTML is {kb}; near Gmail's ~102 KB clip")]
    return []


def check_links(scanner: _IssueScanner) -> list[Finding]:
    """Every link and image must be absolute http(s) (or mailto:, or the unsubscribe marker)."""
    findings = []
    for url in scanner.links:
        scheme = urlsplit(_IGNORED_IN_URL.sub("", url)).scheme.lower()
        if url in (UNSUBSCRIBE_URL_MARKER, PREFERENCES_URL_MARKER) or scheme == "mailto":
            continue
        if scheme in _UNSAFE_SCHEMES:
            findings.append(Finding("error", "unsafe-uri", f"{scheme}: URI in the HTML: {url:.80}"))
        elif scheme not in ("http", "https") or not urlsplit(url.strip()).netloc:
            findings.append(Finding("error", "relative-link", f"not an absolute URL: {url:.80}"))
    if scanner.images_without_alt:
        count = scanner.images_without_alt
        findings.append(Finding("warning", "image-alt", f"{count} image(s) without alt text"))
    return findings


def check_placeholders(issue: Issue) -> list[Finding]:
    """Find template tags and markers left by OUR templates (``{{``, ``{%``, ``@@`` ...).

    Feed content is data, shown literally: an item title or summary may well contain "{{" or
    "@@" (a code snippet, a mail address). The items' own text is taken out of the parts
    before the search, so only what our templates produced is checked.
    """
    fragments = _item_fragments(issue)
    findings = []
    for part, content in (("HTML", _STYLE_BLOCK.sub("", issue.html or "")), ("text", issue.text)):
        content = _without(content or "", fragments)
        for marker in MARKERS:
            content = content.replace(marker, "")
        for tag in _TEMPLATE_TAGS:
            at = content.find(tag)
            if at >= 0:
                context = " ".join(content[max(0, at - 30) : at + 30].split())
                message = f"unrendered placeholder {tag!r} in the {part} part: …{context}…"
                findings.append(Finding("error", "placeholder", message))
    subject = _without(issue.subject or "", fragments)
    if "{{" in subject or "{%" in subject or "@@" in subject:
        findings.append(
            Finding("error", "placeholder", f"placeholder in subject {issue.subject!r}")
        )
    return findings


_ITEM_FIELDS = ("title", "link", "summary_html", "source_name", "author", "company", "location")
_TAG = re.compile(r"<[^>]*>")


def _item_fragments(issue: Issue) -> list[str]:
    """The items' texts that hold a tag-like sequence, as they may appear in the parts:
    plain, HTML-escaped, and the text between the tags of a summary; longest first."""
    items = [*issue.items, *getattr(issue, "preview_items", ())]
    found: set[str] = set()
    for item in items:
        for name in _ITEM_FIELDS:
            value = getattr(item, name, None) or ""
            for piece in (value, *_TAG.split(value)):
                piece = " ".join(html.unescape(piece).split())
                if any(tag in piece for tag in _TEMPLATE_TAGS):
                    # As stored, and as rendered (render.inert breaks its "@@").
                    for form in {piece, inert(piece)}:
                        found.update({form, html.escape(form, quote=False), html.escape(form)})
    return sorted(found, key=len, reverse=True)


def _without(content: str, fragments: list[str]) -> str:
    # Blanks squeezed first: the text part wraps long titles over several lines.
    if not fragments:
        return content
    squeezed = " ".join(content.split())
    for fragment in fragments:
        squeezed = squeezed.replace(fragment, " ")
    return squeezed


def check_text_part(issue: Issue, scanner: _IssueScanner, config: Mapping) -> list[Finding]:
    """The text part must exist and carry every link, item title and the footer of the HTML."""
    text = issue.text or ""
    if not text.strip():
        return [Finding("error", "text-missing", "the issue has no text part")]
    findings = []
    squeezed = _squeeze(text)
    for title in (title for titles in scanner.titles.values() for title in titles):
        if _squeeze(title) not in squeezed:
            findings.append(Finding("error", "text-lacks-item", f"text lacks item {title!r:.80}"))
    for url in sorted({url for url in scanner.anchors if url.startswith("http")}):
        if url not in text:
            findings.append(Finding("error", "text-lacks-link", f"text lacks link {url:.80}"))
    for part, content in (("HTML", issue.html or ""), ("text", text)):
        if UNSUBSCRIBE_URL_MARKER not in content:
            message = f"the {part} part has no unsubscribe link"
            findings.append(Finding("error", "no-unsubscribe", message))
    address = (config.get("MAILER_POSTAL_ADDRESS") or "").strip()
    if not address or _squeeze(address) not in squeezed:
        findings.append(Finding("warning", "postal-address", "no postal address in the footer"))
    return findings


def check_sections(scanner: _IssueScanner) -> list[Finding]:
    """An empty section warns; an issue without any item is an error."""
    counts = {section: len(scanner.titles.get(section, [])) for section in Section.ALL}
    if sum(counts.values()) == 0:
        return [Finding("error", "empty-issue", "the issue has no items")]
    return [
        Finding("warning", "empty-section", f"section {SECTION_TITLES[section]} is empty")
        for section, count in counts.items()
        if count == 0
    ]


def check_spam(issue: Issue, config: Mapping) -> list[Finding]:
    """Run SpamAssassin on a sample of ``issue`` and turn its score into findings."""
    try:
        report = spam_score(issue, config)
    except SpamCheckError as exc:
        return [Finding("warning", "spamassassin", f"SpamAssassin check not done: {exc}")]
    return spam_findings(report)


def spam_findings(report: SpamReport) -> list[Finding]:
    """Score 2.0 or more warns, 5.0 (SpamAssassin's default "required") or more errors."""
    message = f"SpamAssassin score {report.describe()}"
    if report.score >= SPAM_ERROR_SCORE:
        return [Finding("error", "spam-score", message)]
    if report.score >= SPAM_WARN_SCORE:
        return [Finding("warning", "spam-score", message)]
    return []


def _squeeze(text: str) -> str:
    """Drop all whitespace, so a wrapped title (Japanese lines break anywhere) still matches."""
    return "".join(text.split())
