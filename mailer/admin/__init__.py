"""The admin area (/admin): thin views over the services, for the newsletter's operators.

``views.bp`` is the blueprint; each page is its own module (auth, dashboard, next_issue,
issues, items, feeds, subscribers, subscribers_io, settings). Read-only statistics and lists
live in ``queries`` and ``listing``; ``accounts`` holds the admin accounts' own service.
"""
