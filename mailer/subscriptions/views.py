"""Views of the subscriptions room (placeholder written by the lead; the owner replaces it)."""

from flask import Blueprint

bp = Blueprint("subscriptions", __name__)
