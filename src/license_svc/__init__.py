"""license-svc: FiscoBridge licensing microservice."""
