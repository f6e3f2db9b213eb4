"""Node telemetry (the cAdvisor role): readers of /proc and /sys, the sampler thread, its in-memory history, /metrics.

Parts: `readers.py` (node counters from a proc/sys tree, injectable for tests), `samples.py` (rates from two
readings; pure), `history.py` (the ring of recent samples and its window summaries), `sampler.py` (the thread that
samples every interval, per container through PodRuntime.stats), `prometheus.py` (a Collector over the samples).
Nothing here writes to disk.
"""
