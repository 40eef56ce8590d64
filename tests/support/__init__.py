"""Helpers the tests import (no test module imports another test module)."""
