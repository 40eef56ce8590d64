"""Views of the digest room (placeholder written by the lead; the owner replaces it)."""

from flask import Blueprint

bp = Blueprint("digest", __name__)
