"""ReplicationController/ReplicaSet controller, in four parts: `plan`, `actions`, `controller`, `ownerindex`.

`plan` is pure (adopt, release, scale, status, garbage); `actions` are what it returns, each applied by
controllers.base.apply; `controller` decides which controllers a pass plans (changed ones, all at each resync);
`ownerindex` groups pods by controller, fed by the cache.
"""
