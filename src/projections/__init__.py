"""Materialised views of the licensing event store and their runner."""
