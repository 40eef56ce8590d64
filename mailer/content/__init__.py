"""content room (see ../shared/DESIGN.md)."""
