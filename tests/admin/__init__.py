"""Tests of mailer/admin/: sign-in, dashboard, subscribers, content, issues and sending."""
