"""Notifications: signed webhooks and email, queued in the database and delivered with retries."""
