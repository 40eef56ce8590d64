"""admin room (see ../shared/DESIGN.md)."""
