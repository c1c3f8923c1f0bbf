"""Keys and the activation dialog: issuing, revoking, activating, the expiry sweeper."""
