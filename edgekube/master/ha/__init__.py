"""Two masters, one active and one standby (docs/ha.md): the active's journal streamed to the standby, takeover.

`plan.py` the pure decisions (take over? step down? what to do with a replication frame), `gate.py` what the
master's group commit asks before answering and publishing, `active.py` the active's stream and acks,
`standby.py` the standby's copy, `supervisor.py` the process that holds the role and switches it.
"""
