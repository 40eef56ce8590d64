"""Bounces: the latest bounce and complaint events, filtered by kind (read-only)."""

from flask import render_template, request

from ..extensions import db
from . import listing
from .blueprint import bp


@bp.get("/bounces")
def bounce_list():
    """The latest 200 bounce and complaint events; ``kind`` filters (hard, soft, complaint)."""
    kind = request.args.get("kind", "")
    kind = kind if kind in listing.BOUNCE_KINDS else ""
    return render_template(
        "admin/bounces.html",
        rows=listing.latest_bounces(db.session, kind=kind),
        kind=kind,
        kinds=listing.BOUNCE_KINDS,
    )
