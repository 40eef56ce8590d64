"""Local development mail catcher (placeholder written by the lead; the owner replaces it)."""

from flask import Blueprint

bp = Blueprint("devmail", __name__)
