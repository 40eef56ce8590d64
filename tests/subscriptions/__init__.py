"""Tests of mailer/subscriptions/: signup, addresses, tokens, limits, the lifecycle."""
