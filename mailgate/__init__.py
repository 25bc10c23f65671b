"""mailgate: an email-first helpdesk gateway."""

__version__ = "0.1.0"
