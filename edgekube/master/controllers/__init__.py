"""The master's controllers: one shape (`base`), a list of those that run (`registry`), and the controllers.

`nodelifecycle` (its inputs in `nodeinputs`) and `replication/`; `owners` holds the owner-reference helpers.
"""
