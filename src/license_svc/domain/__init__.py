"""Domain model of the licensing service: pure rules, no I/O."""
