"""The fleet rollout tests: Ansible against Debian machines running systemd in Podman (tests/support/machines.py)."""
