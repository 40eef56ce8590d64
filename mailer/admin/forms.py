"""Flask-WTF forms of the admin pages (each carries the CSRF token)."""

import re
from urllib.parse import urlsplit

from email_validator import EmailNotValidError, validate_email
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import (
    BooleanField,
    PasswordField,
    RadioField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from ..models import Section

MAX_TEST_RECIPIENTS = 10
SECTION_CHOICES = [SelectChoice(Section.NEWS, "News"), SelectChoice(Section.OPENINGS, "Openings")]


class LoginForm(FlaskForm):
    """Sign-in: address and password."""

    email = StringField("E-mail address", validators=[DataRequired(), Length(max=320)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


def split_addresses(raw: str) -> list[str]:
    """Split a comma-, semicolon- or newline-separated list of addresses; drop empty parts."""
    return [part.strip() for part in re.split(r"[,;\s]+", raw or "") if part.strip()]


class TestSendForm(FlaskForm):
    """Addresses for a test copy of an issue (one or more, at most MAX_TEST_RECIPIENTS)."""

    addresses = TextAreaField("Send a test copy to", validators=[DataRequired()])

    def validate_addresses(self, field) -> None:
        """Check every address (syntax only: no DNS lookups on an admin page)."""
        addresses = split_addresses(field.data)
        if not addresses:
            raise ValidationError("Give at least one address.")
        if len(addresses) > MAX_TEST_RECIPIENTS:
            raise ValidationError(f"At most {MAX_TEST_RECIPIENTS} addresses at once.")
        normalized = []
        for address in addresses:
            try:
                normalized.append(validate_email(address, check_deliverability=False).normalized)
            except EmailNotValidError as exc:
                raise ValidationError(f"{address}: {exc}") from exc
        field.data = "\n".join(normalized)


def _http_url(form, field) -> None:
    parts = urlsplit(field.data or "")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValidationError("Give a full http:// or https:// address.")


class ItemForm(FlaskForm):
    """A hand-written news item or job opening."""

    section = SelectField("Section", choices=SECTION_CHOICES)
    title = StringField("Title", validators=[DataRequired(), Length(max=1024)])
    link = StringField("Link", validators=[DataRequired(), Length(max=2048), _http_url])
    summary = TextAreaField("Summary", validators=[Optional(), Length(max=20000)])
    company = StringField("Company", validators=[Optional(), Length(max=512)])
    location = StringField("Location", validators=[Optional(), Length(max=512)])
    job_type = StringField("Type", validators=[Optional(), Length(max=128)])


class FeedForm(FlaskForm):
    """A new feed: http(s) URL and section."""

    url = StringField("Feed URL", validators=[DataRequired(), Length(max=2048), _http_url])
    section = SelectField("Section", choices=SECTION_CHOICES)


class FeedSectionForm(FlaskForm):
    """Change a feed's section."""

    section = SelectField("Section", choices=SECTION_CHOICES)


IMPORT_OPT_IN = "opt_in"
IMPORT_CONSENTED = "consented"


class ImportForm(FlaskForm):
    """A CSV file of addresses and how their consent is to be handled."""

    file = FileField("CSV file", validators=[FileRequired()])
    consent = RadioField(
        "These addresses",
        choices=[
            SelectChoice(
                IMPORT_OPT_IN,
                "Send a double opt-in mail to each (they become subscribers when they confirm)",
            ),
            SelectChoice(
                IMPORT_CONSENTED,
                "These people already consented (recorded as such in their consent history)",
            ),
        ],
        validators=[DataRequired(message="Choose how to handle consent.")],
    )


class EraseForm(FlaskForm):
    """Confirmation of an erasure (it cannot be undone)."""

    confirm = BooleanField(
        "I understand that the address and its history are deleted for good",
        validators=[DataRequired(message="Tick the box to confirm.")],
    )
