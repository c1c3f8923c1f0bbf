"""The live read path of a server process: reads of the views that wait for a position, woken by
the views' change notices. It reads views; it never writes them, and it knows nothing of gRPC."""
