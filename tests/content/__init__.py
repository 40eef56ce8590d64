"""Tests of mailer/content/: feeds fetched, parsed, sanitised and deduped; items by hand."""
