"""Seat leases: the seat count as a limit every replica enforces."""
