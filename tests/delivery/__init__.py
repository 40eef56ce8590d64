"""Tests of mailer/delivery/: messages, DKIM, SMTP, the sender, the ledger, deliverability."""
