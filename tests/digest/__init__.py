"""Tests of mailer/digest/: building, rendering, preflight, the archive, the weekly calendar."""
