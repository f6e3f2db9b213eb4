"""Root test configuration: loads the shared fixture plugins from tests/support."""

pytest_plugins = ["tests.support.broker", "tests.support.cables", "tests.support.podman", "tests.support.secure"]
