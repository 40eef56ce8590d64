"""The content room: feeds become items (fetch, parse, sanitise, dedupe), and admins' own items.

See docs/ARCHITECTURE.md for how it fits with the other rooms.
"""
