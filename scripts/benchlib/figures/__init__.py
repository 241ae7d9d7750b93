"""The figures of scripts/bench, one module per kind of work (read, write, small files,
listing, peers); each function takes one run's measures into a report.Bench."""

WAN_RTT_S = 0.02  # "over a WAN": a server 20 ms away, nearer than most are
WAN_FILES = 100
