"""The digest room: items become a numbered issue, rendered once (HTML and text), checked
before a send, shown in the archive; and the weekly calendar (``schedule``).

It never imports the delivery room (delivery calls digest). See docs/ARCHITECTURE.md.
"""
