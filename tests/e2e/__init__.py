"""Tests that start real processes: ``make run``, workers, gunicorn, Chromium."""
