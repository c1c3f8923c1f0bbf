"""`make bench`: the service's hot paths measured against ceilings measured in the same run.

Entry point: `python -m bench.run [--quick] [--workers N] [--only NAME]`. See bench/README.md.
"""
