"""`edgekube doctor`: checks a board has what a node or master needs, with the fix for each failure.

Parts: `result` (a check's outcome), `host` (kernel, cgroups, swap, clock, NFS, GPIO, disks, SD card, each read
under an injectable root), `services` (Podman and its socket, the MQTT broker), `report` (which checks a role
runs, the checklist, JSON, exit status).
"""
