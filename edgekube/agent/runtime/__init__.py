"""Container runtimes behind the PodRuntime protocol: Podman (real) and an in-memory fake for unit tests."""
