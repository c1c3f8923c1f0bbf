"""Entry points: the gRPC server and servicers, the dashboard, the CLI and the people's
client. They may import anything; nothing imports them."""
