"""digest room (see ../shared/DESIGN.md)."""
