"""The master's controllers (replication, node lifecycle): pure plans + thin applies, run by its reconcile loop."""
