"""Deployment controller, in three parts: `plan` (pure rollout arithmetic), `actions`, `controller` (registered).

`plan` decides per Deployment which ReplicaSets exist and how many replicas each has (RollingUpdate, Recreate,
paused, revision history) and its status; `actions` carry that out; `controller` feeds `plan` each pass.
"""
