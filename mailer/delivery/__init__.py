"""delivery room (see ../shared/DESIGN.md)."""
