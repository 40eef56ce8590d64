"""Subscribers in and out as CSV: export streamed in keyset batches, import via the service."""

import csv
import io
from collections.abc import Iterator
from datetime import datetime

from flask import Response, render_template, request, stream_with_context
from sqlalchemy.orm import Session
from werkzeug.utils import secure_filename

from .. import clock
from ..extensions import db
from ..models import SubscriberStatus
from ..subscriptions import service
from ..subscriptions.errors import SubscriptionError
from . import listing
from .blueprint import bp
from .forms import IMPORT_CONSENTED, ImportForm
from .subscribers import topics_arg

EXPORT_BATCH = 1000
EXPORT_HEADER = (
    "id",
    "email",
    "status",
    "source",
    "created_at",
    "confirmed_at",
    "unsubscribed_at",
    "sections",
    "paused_until",
)
# A cell starting with one of these is a formula in spreadsheet programs (CSV injection,
# OWASP): such a cell is written with a leading apostrophe.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def export_csv_chunks(
    session: Session, *, status: str = "", sections: str = "", batch_size: int = EXPORT_BATCH
) -> Iterator[str]:
    """Yield the CSV export in pieces: the header, then one piece per keyset batch.

    Memory stays that of one batch whatever the number of subscribers.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(EXPORT_HEADER)
    for batch in listing.export_batches(
        session, status=status, sections=sections, batch_size=batch_size
    ):
        for row in batch:
            writer.writerow([_cell(value) for value in row])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


@bp.get("/subscribers/export.csv")
def subscriber_export():
    """Stream every subscriber (or those of one ``status``) as CSV."""
    status = request.args.get("status", "")
    status = status if status in SubscriberStatus.ALL else ""
    sections = topics_arg()
    label = "-".join(part for part in (status, sections.replace(",", "+")) if part) or "all"
    name = f"subscribers-{label}-{clock.now():%Y%m%d}.csv"
    chunks = stream_with_context(export_csv_chunks(db.session, status=status, sections=sections))
    return Response(
        chunks,
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _refused(form: ImportForm, message: str):
    form.file.errors = [message]
    return render_template("admin/import.html", form=form, report=None), 400


@bp.route("/subscribers/import", methods=["GET", "POST"])
def subscriber_import():
    """Import a CSV of addresses; report added, updated, invalid, suppressed, duplicate rows.

    "Send double opt-in" imports them as pending and sends each a confirmation mail; "already
    consented" imports them as confirmed, recorded so in their consent history. Erased,
    unsubscribed and bounced addresses are never re-added without opt-in (the service
    refuses them and counts them as suppressed).
    """
    form = ImportForm()
    if not form.validate_on_submit():
        return render_template("admin/import.html", form=form, report=None)
    upload = form.file.data
    filename = secure_filename(upload.filename or "") or "upload.csv"
    stream = io.TextIOWrapper(upload.stream, encoding="utf-8-sig", newline="")
    try:
        report = service.import_csv(
            db.session,
            stream,
            confirmed=form.consent.data == IMPORT_CONSENTED,
            source=f"import:{filename}",
        )
        db.session.commit()
    except UnicodeDecodeError:
        db.session.rollback()
        return _refused(form, "The file is not UTF-8 text: save it as CSV (UTF-8) and retry.")
    except (csv.Error, SubscriptionError) as exc:
        db.session.rollback()
        return _refused(form, f"The file cannot be imported: {exc}")
    return render_template("admin/import.html", form=ImportForm(formdata=None), report=report)
