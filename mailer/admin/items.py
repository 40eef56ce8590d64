"""Items: list (newest first), add and edit by hand, hide or show again, include a backlog item.

The work is the content room's ``items`` service; a hidden item never enters an issue, and
neither does a new feed's backlog until an admin includes it.
"""

from flask import flash, redirect, render_template, request, url_for

from ..content import items as item_service
from ..content.errors import ItemError
from ..extensions import db
from ..models import Item, Section
from . import listing
from .blueprint import admin_path, bp, id_arg
from .forms import ItemForm

FIELDS = ("section", "title", "link", "summary", "company", "location", "job_type")


def _fields(form: ItemForm) -> dict:
    # Empty optional fields are stored as "no value", not as empty strings.
    values = {name: getattr(form, name).data for name in FIELDS}
    for name in ("company", "location", "job_type"):
        values[name] = (values[name] or "").strip() or None
    values["summary"] = values["summary"] or ""
    return values


@bp.get("/items")
def item_list():
    """Items of one section or all, newest first, keyset-paginated."""
    section = request.args.get("section", "")
    section = section if section in Section.ALL else ""
    page = listing.item_page(
        db.session, section=section, after=id_arg("after"), before=id_arg("before")
    )
    return render_template("admin/items.html", page=page, section=section)


@bp.route("/items/new", methods=["GET", "POST"])
def item_new():
    """Add an item by hand."""
    form = ItemForm()
    if form.validate_on_submit():
        try:
            item = item_service.create_item(db.session, **_fields(form))
            db.session.commit()
        except ItemError as exc:
            db.session.rollback()
            form.form_errors.append(str(exc))
        else:
            flash(f"Item added: {item.title}", "info")
            return redirect(url_for("admin.item_list"))
    return render_template("admin/item_form.html", form=form, item=None)


@bp.route("/items/<int:item_id>/edit", methods=["GET", "POST"])
def item_edit(item_id: int):
    """Edit an item's fields."""
    item = db.session.get(Item, item_id)
    if item is None:
        return render_template("admin/not_found.html", what=f"item {item_id}"), 404
    form = ItemForm(data=_item_data(item) if request.method == "GET" else None)
    if form.validate_on_submit():
        try:
            item_service.update_item(db.session, item, **_fields(form))
            db.session.commit()
        except ItemError as exc:
            db.session.rollback()
            form.form_errors.append(str(exc))
        else:
            flash(f"Item saved: {item.title}", "info")
            return redirect(url_for("admin.item_list"))
    return render_template("admin/item_form.html", form=form, item=item)


def _item_data(item: Item) -> dict:
    data = {name: getattr(item, name) for name in FIELDS if name != "summary"}
    data["summary"] = item.summary_html
    return data


@bp.post("/items/<int:item_id>/hidden")
def item_hidden(item_id: int):
    """Hide an item (``hidden=1``) or show it again (``hidden=0``)."""
    item = db.session.get(Item, item_id)
    if item is None:
        return render_template("admin/not_found.html", what=f"item {item_id}"), 404
    hidden = request.form.get("hidden") == "1"
    item_service.set_hidden(db.session, item, hidden)
    db.session.commit()
    flash(f"Item {'hidden' if hidden else 'shown again'}: {item.title}", "info")
    return redirect(admin_path(request.form.get("back"), url_for("admin.item_list")))


@bp.post("/items/<int:item_id>/include")
def item_include(item_id: int):
    """Include a backlog item (an old entry of a new feed) in the next issue."""
    item = db.session.get(Item, item_id)
    if item is None:
        return render_template("admin/not_found.html", what=f"item {item_id}"), 404
    item_service.include_backlog_item(db.session, item)
    db.session.commit()
    flash(f"Item included in the next issue: {item.title}", "info")
    return redirect(admin_path(request.form.get("back"), url_for("admin.item_list")))
