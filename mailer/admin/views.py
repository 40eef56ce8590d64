"""The admin blueprint with every page: ``mailer/__init__.py`` registers :data:`bp` at /admin.

Each page module adds its routes to the one blueprint defined in ``blueprint.py``; importing
them here is what attaches those routes.
"""

from . import (  # noqa: F401 - imported for the routes they add to bp
    auth,
    bounces,
    dashboard,
    feeds,
    filters,
    issues,
    items,
    next_issue,
    settings,
    subscribers,
    subscribers_io,
)
from .blueprint import bp

__all__ = ["bp"]
