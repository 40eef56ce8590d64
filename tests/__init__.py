"""The test suite: one folder a room of mailer/, plus app/, e2e/ and support/."""
