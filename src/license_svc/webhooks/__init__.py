"""Partners hear of their keys (rules §14): signed webhooks delivered at least once from the
store's log.

- `signing`: the endpoints' `whsec_` secrets (made, sealed at rest, opened to sign) and the
  Standard Webhooks signature.
- `addresses`: which URLs may be called (https to public addresses unless the private switch is
  on), checked at creation and again at every send, on the address actually connected to.
- `messages`: what a stored event tells a partner (types, bodies, stable message ids).
- `tables`: the room's tables and the reads and writes of endpoints and deliveries.
- `router`: a tracked subscription of the store's log that turns events into deliveries in the
  same transaction as its tracking position; and the 14-days reminders.
- `sender`: leases due deliveries (`FOR UPDATE SKIP LOCKED`), sends them, records every attempt
  and schedules the next one.
- `worker`: the router, the reminders and the sender of one process (`license-svc webhooks`,
  and inside `license-svc run`).
"""
