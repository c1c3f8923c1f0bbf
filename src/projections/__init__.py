"""Materialised views of the licensing event store (one module per view) and their bookkeeping.
The workers that keep them live in `projections.workers`; the server's reads in
`license_svc.reads`."""
