"""The `license-svc` console script.

Set before anything imports grpc (this package is imported before `main`'s imports run):
gRPC's fork handlers are for children that use gRPC, and ours never do (the embedded
PostgreSQL's pg_ctl, a pager); with them on, every fork while a channel or server is up — e.g.
stopping the embedded database on Ctrl-C of `run` — printed a `fork_posix.cc` line.
"""

import os

os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
