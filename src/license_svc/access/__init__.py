"""Who may call what (tokens, principals, roles) and the request fields' rules:
shared by every entry point."""
