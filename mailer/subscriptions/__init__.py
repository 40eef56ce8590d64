"""The subscriptions room: signup, double opt-in, tokens, unsubscribe, consent, suppression.

``service`` is its front door. It never imports the delivery room: the worker's signups job
calls this room, then delivery. See docs/ARCHITECTURE.md.
"""
