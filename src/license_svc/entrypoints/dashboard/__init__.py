"""The ops dashboard page: server-rendered HTML over the read layer the gRPC OpsService uses
(license_svc.reads/ops.py), behind the same token table. board.py gathers what one page shows,
render.py turns it into escaped HTML with an inline SVG chart, server.py serves it."""
