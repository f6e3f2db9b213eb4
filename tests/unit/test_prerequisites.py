"""tests/support/prerequisites.py: a missing part skips a test outside CI and fails it with CI=true."""

from __future__ import annotations

import pytest

from tests.support import prerequisites
from tests.support.prerequisites import in_ci, missing


@pytest.mark.parametrize("value", ["true", "TRUE", "1", "yes"])
def test_ci_true_turns_a_missing_prerequisite_into_a_failure_naming_it_and_the_install(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.fail.Exception) as failed:
        missing("podman is not installed")
    assert "podman is not installed" in str(failed.value)
    assert "scripts/install.sh" in str(failed.value)


@pytest.mark.parametrize("value", [None, "", "false", "0"])
def test_outside_ci_a_missing_prerequisite_skips(monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    assert not in_ci()
    with pytest.raises(pytest.skip.Exception) as skipped:
        missing("network namespaces are unavailable (network namespaces need root)", "run the tests as root")
    assert "need root" in str(skipped.value) and "run the tests as root" in str(skipped.value)


def test_with_ci_true_a_missing_rumqttd_fails_naming_the_iotcore_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    monkeypatch.setattr(prerequisites, "have_rumqttd", lambda: False)
    with pytest.raises(pytest.fail.Exception) as failed:
        prerequisites.require_rumqttd()
    assert "rumqttd (PyPI iotcore) is not installed" in str(failed.value)
    assert "`iotcore`" in str(failed.value)
