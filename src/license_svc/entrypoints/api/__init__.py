"""gRPC adapter: server, servicers, auth and the error table."""
