"""The pieces of scripts/bench.py: servers, mounts, peers and the direct path to measure
against, the figures (figures/), and the table they end in (report.py). Nothing here
asserts anything about timings; the only imports from portalfs's server are in servers.py
(none today: the servers run as `python -m portalfs serve` subprocesses).
"""
