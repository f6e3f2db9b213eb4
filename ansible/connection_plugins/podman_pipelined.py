"""Ansible connection `podman_pipelined`: containers.podman.podman with pipelining, for fleets of containers.

Used by tests/fleet/ (the systemd machines) and by anyone trying the roles on containers (ansible/README.md).
containers.podman.podman runs `podman exec` without `-i`, so a module cannot be fed on stdin and every module
costs a temporary directory, a copy, a chmod, the run and a removal: four `podman exec`. With `-i` a pipelined
module is one `podman exec` (as over SSH with `pipelining = true`); everything else is the collection's plugin.
"""

from __future__ import annotations

import shlex

from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.connection import ConnectionBase, ensure_connect
from ansible_collections.containers.podman.plugins.connection.podman import Connection as PodmanConnection

# Read by ansible-doc and the option loader as text: the same options as containers.podman.podman.
DOCUMENTATION = """
    name: podman_pipelined
    short_description: containers.podman.podman with pipelining (podman exec -i)
    description:
        - Run commands or put/fetch files in an existing container with the podman tool; modules are piped to
          the interpreter on stdin when pipelining is on.
    options:
      remote_addr:
        description:
          - The ID of the container you want to access.
        default: inventory_hostname
        vars:
          - name: ansible_host
          - name: inventory_hostname
          - name: ansible_podman_host
      remote_user:
        description:
          - User specified via name or UID which is used to execute commands inside the container.
        ini:
          - section: defaults
            key: remote_user
        env:
          - name: ANSIBLE_REMOTE_USER
        vars:
          - name: ansible_user
      podman_extra_args:
        description:
          - Extra arguments to pass to the podman command line.
        default: ''
        ini:
          - section: defaults
            key: podman_extra_args
        vars:
          - name: ansible_podman_extra_args
        env:
          - name: ANSIBLE_PODMAN_EXTRA_ARGS
      podman_executable:
        description:
          - Executable for podman command.
        default: podman
        vars:
          - name: ansible_podman_executable
        env:
          - name: ANSIBLE_PODMAN_EXECUTABLE
"""


class Connection(PodmanConnection):
    """`podman exec -i`: the command's stdin is the module when Ansible pipelines it."""

    transport = "podman_pipelined"
    has_pipelining = True

    @ensure_connect
    def exec_command(self, cmd, in_data=None, sudoable=False):
        ConnectionBase.exec_command(self, cmd, in_data=in_data, sudoable=sudoable)
        exec_args = ["exec", "-i"]
        if self.user:
            exec_args.extend(("--user", self.user))
        return self._podman(exec_args, shlex.split(to_native(cmd, errors="surrogate_or_strict")), in_data)
