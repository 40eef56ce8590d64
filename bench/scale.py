"""Placeholder while scale is being written."""


def main(argv):
    """Not yet."""
    raise SystemExit("scale: not written yet")
