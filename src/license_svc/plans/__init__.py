"""Plans bought online: the billing provider's events recorded on the store."""
