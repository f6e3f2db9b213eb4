"""`$(VAR)` expansion of env values, command and args: Kubernetes' third_party/forked/golang/expansion/expand.go.

The cases are expand_test.go's (TestMapReference / TestMapping): defined names are replaced, undefined ones left as
written, `$$` escapes, incomplete references kept.
"""

from __future__ import annotations

import pytest

from edgekube.agent.runtime.podman.specgen import container_spec
from edgekube.model.expansion import expand
from edgekube.model.pod import Pod

ENV = {"VAR_A": "A", "VAR_B": "B", "VAR_C": "C", "VAR_EMPTY": ""}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$(VAR_A)", "A"),
        ("___$(VAR_B)___", "___B___"),
        ("$(VAR_A)-$(VAR_A)", "A-A"),
        ("$(VAR_A)$(VAR_B)$(VAR_C)", "ABC"),
        ("$(VAR_EMPTY)", ""),
        ("$(VAR_DNE)", "$(VAR_DNE)"),
        ("$$(VAR_A)", "$(VAR_A)"),
        ("$$$(VAR_A)", "$A"),
        ("$$$$", "$$"),
        ("$$$$$$(BIG_MONEY)", "$$$(BIG_MONEY)"),
        ("$(VAR_A", "$(VAR_A"),
        ("$VAR_A", "$VAR_A"),
        ("$", "$"),
        ("f$", "f$"),
        ("$()", "$()"),
        ("echo $(date)", "echo $(date)"),
    ],
)
def test_expand_as_kubernetes(text: str, expected: str) -> None:
    assert expand(text, ENV) == expected


def test_command_and_args_name_the_containers_env() -> None:
    """kubelet ExpandContainerCommandAndArgs: command → entrypoint, args → command, each `$(NAME)` from env."""
    pod = Pod.model_validate({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{
        "name": "c", "image": "i", "env": [{"name": "GREETING", "value": "hi"}],
        "command": ["sh", "-c"], "args": ["echo $(GREETING) $(NOPE) $$(GREETING)"],
    }]}})  # fmt: skip
    body = container_spec(pod, pod.spec.containers[0], 0, "pod", {})
    assert body["entrypoint"] == ["sh", "-c"]
    assert body["command"] == ["echo hi $(NOPE) $(GREETING)"]
