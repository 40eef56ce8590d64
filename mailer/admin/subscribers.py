"""Subscribers: search, filter, keyset pages; a subscriber's page; unsubscribe and erase.

Changes go through the subscriptions room's service, which records the consent events.
"""

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user

from .. import clock
from ..extensions import db
from ..models import Section, Subscriber, SubscriberStatus
from ..subscriptions import service
from ..subscriptions.errors import SubscriptionError
from . import listing
from .blueprint import bp, id_arg
from .forms import EraseForm

SEARCH_MAX = 320
TOPIC_FILTERS = (Section.NEWS, Section.OPENINGS, Section.BOTH)


def topics_arg() -> str:
    """The ``sections`` filter of a list or export: one of :data:`TOPIC_FILTERS`, or ""."""
    value = request.args.get("sections", "")
    return value if value in TOPIC_FILTERS else ""


def _not_found(subscriber_id: int):
    return render_template("admin/not_found.html", what=f"subscriber {subscriber_id}"), 404


@bp.get("/subscribers")
def subscriber_list():
    """Subscribers newest first; ``q`` searches the address, ``status`` filters."""
    search = request.args.get("q", "").strip()[:SEARCH_MAX]
    status = request.args.get("status", "")
    status = status if status in SubscriberStatus.ALL else ""
    sections = topics_arg()
    page = listing.subscriber_page(
        db.session,
        search=search,
        status=status,
        sections=sections,
        after=id_arg("after"),
        before=id_arg("before"),
    )
    return render_template(
        "admin/subscribers.html",
        page=page,
        search=search,
        status=status,
        statuses=SubscriberStatus.ALL,
        sections=sections,
        topic_filters=TOPIC_FILTERS,
        now=clock.now(),
    )


@bp.get("/subscribers/<int:subscriber_id>")
def subscriber_detail(subscriber_id: int):
    """One subscriber: status, consent history, bounces and deliveries."""
    subscriber = db.session.get(Subscriber, subscriber_id)
    if subscriber is None:
        return _not_found(subscriber_id)
    return render_template(
        "admin/subscriber.html",
        subscriber=subscriber,
        events=listing.consent_events(db.session, subscriber.id),
        deliveries=listing.subscriber_deliveries(db.session, subscriber.id),
        bounces=listing.latest_bounces(db.session, subscriber_id=subscriber.id, limit=50),
        can_unsubscribe=subscriber.status in (SubscriberStatus.PENDING, SubscriberStatus.CONFIRMED),
    )


@bp.post("/subscribers/<int:subscriber_id>/unsubscribe")
def subscriber_unsubscribe(subscriber_id: int):
    """Unsubscribe on the subscriber's behalf (recorded with the admin's address)."""
    subscriber = db.session.get(Subscriber, subscriber_id)
    if subscriber is None:
        return _not_found(subscriber_id)
    try:
        changed = service.unsubscribe_subscriber(
            db.session,
            subscriber,
            ip=request.remote_addr,
            user_agent=request.user_agent.string[:512] or None,
            source=f"admin:{current_user.email}",
        )
        db.session.commit()
    except SubscriptionError as exc:
        db.session.rollback()
        flash(f"Not unsubscribed: {exc}", "error")
    else:
        flash(f"{subscriber.email} is unsubscribed{'' if changed else ' already'}.", "info")
    return redirect(url_for("admin.subscriber_detail", subscriber_id=subscriber_id))


@bp.route("/subscribers/<int:subscriber_id>/erase", methods=["GET", "POST"])
def subscriber_erase(subscriber_id: int):
    """Erase a subscriber for good (after a confirmation page; no JavaScript needed)."""
    subscriber = db.session.get(Subscriber, subscriber_id)
    if subscriber is None:
        return _not_found(subscriber_id)
    form = EraseForm()
    if form.validate_on_submit():
        email = subscriber.email
        try:
            service.erase_subscriber(db.session, subscriber)
            db.session.commit()
        except SubscriptionError as exc:
            db.session.rollback()
            flash(f"Not erased: {exc}", "error")
        else:
            flash(f"{email} is erased; the address cannot be added back without opt-in.", "info")
            return redirect(url_for("admin.subscriber_list"))
    return render_template("admin/erase.html", subscriber=subscriber, form=form)
