"""subscriptions room (see ../shared/DESIGN.md)."""
