"""The `license-svc` console script."""
