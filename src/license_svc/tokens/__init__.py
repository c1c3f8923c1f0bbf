"""Signed allowance tokens (rules §13): an account's allowance as a short-lived Ed25519 JWS that
the Integrations service checks without calling this service.

- `keys`: the signing key and the retired public keys, their `kid`s (RFC 7638 thumbprints) and
  the published key set (JWKS); reloaded on SIGHUP.
- `mint`: the token for an allowance read at a view position.
- `verify`: the verifier for callers in Python: token + key set + time → the claims, or the
  reason it is refused. It imports nothing of the server (no settings, no database).
"""
