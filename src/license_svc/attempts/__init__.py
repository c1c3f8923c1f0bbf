"""The failed-attempt limiter: its SQL, its upkeep, and its reads for ops and metrics."""
