"""`edgekube firmware apply`: the Raspberry Pi boot-partition settings edgekube nodes need, merged idempotently.

Parts: `config.txt` and `cmdline.txt` (the settings, package data; firmware/ in the repository links to them),
`bootfiles` (pure merges of those into a boot partition's files), `apply` (read, diff, back up, write) and
`command` (the CLI). Ansible's common role calls the command (firmware/README.md).
"""
