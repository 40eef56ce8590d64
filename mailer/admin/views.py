"""Views of the admin room (placeholder written by the lead; the owner replaces it)."""

from flask import Blueprint

bp = Blueprint("admin", __name__)
