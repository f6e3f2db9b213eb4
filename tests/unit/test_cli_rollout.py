"""`ekctl rollout`, `set image`, `get/describe deploy` against a real master with agents on FakeRuntime (ApiServer).

Every consequence of a command has happened when it returns (tests/support/apiserver.py steps the master and the
agents), so a rollout started by `set image` is complete when the next command runs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.apiserver import ApiServer

Capture = pytest.CaptureFixture[str]
MANIFEST = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "img:a"}]
"""


@pytest.fixture
def server(tmp_path: Path) -> ApiServer:
    server = ApiServer(tmp_path)
    server.add_node("pi-1")
    server.add_node("pi-2")
    server.apply(MANIFEST)
    return server


def images(server: ApiServer) -> list[str]:
    pods = server.master.store.list("Pod", "default")
    return sorted(p["spec"]["containers"][0]["image"] for p in pods)


def out(server: ApiServer, capsys: Capture, *argv: str) -> tuple[int, str, str]:
    code = server.ekctl(*argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def settle(server: ApiServer) -> None:
    """A few more passes (what the master's resync would do) after the last report."""
    for _ in range(20):
        server.master.reconcile()
        for agent in server.agents.values():
            agent.reconcile()
            assert agent.wait_idle(5)


def test_set_image_history_undo_to_revision(server: ApiServer, capsys: Capture) -> None:
    settle(server)
    assert images(server) == ["img:a"] * 3
    assert out(server, capsys, "set", "image", "deploy/web", "web=img:b")[:2] == (
        0,
        "deployment.apps/web image updated\n",
    )
    settle(server)
    assert images(server) == ["img:b"] * 3
    code, text, _ = out(server, capsys, "rollout", "history", "deployment/web")
    assert text.splitlines() == [
        "deployment.apps/web ",
        "REVISION  CHANGE-CAUSE",
        "1         <none>",
        "2         <none>",
    ]
    code, text, _ = out(server, capsys, "rollout", "history", "deploy/web", "--revision", "1")
    assert text.splitlines()[0] == "deployment.apps/web with revision #1"
    assert "Image:" in text and "img:a" in text and "pod-template-hash" not in text
    assert out(server, capsys, "rollout", "undo", "deploy/web", "--to-revision", "1")[:2] == (
        0,
        "deployment.apps/web rolled back\n",
    )
    settle(server)
    assert images(server) == ["img:a"] * 3
    code, text, _ = out(server, capsys, "rollout", "undo", "deploy/web", "--to-revision", "3")
    assert (code, text) == (0, "deployment.apps/web skipped rollback (current template already matches revision 3)\n")
    code, _, err = out(server, capsys, "rollout", "undo", "deploy/web", "--to-revision", "9")
    assert code == 1 and "unable to find specified revision 9 in history" in err
    code, text, _ = out(server, capsys, "rollout", "status", "deploy/web", "--watch=false")
    assert (code, text) == (0, 'deployment "web" successfully rolled out\n')


def test_refusals_name_the_problem(server: ApiServer, capsys: Capture) -> None:
    code, _, err = out(server, capsys, "set", "image", "deploy/web", "nope=img:z")
    assert code == 1 and 'unable to find container named "nope"' in err
    code, _, err = out(server, capsys, "rollout", "resume", "deploy/web")
    assert code == 1 and 'deployments.apps "web" is not paused' in err
    assert out(server, capsys, "rollout", "pause", "deploy/web")[0] == 0
    code, _, err = out(server, capsys, "rollout", "undo", "deploy/web")
    assert code == 1 and "you cannot rollback a paused deployment" in err
    code, _, err = out(server, capsys, "rollout", "restart", "deploy/web")
    assert code == 1 and "can't restart paused deployment (run rollout resume first)" in err
    code, _, err = out(server, capsys, "rollout", "status", "rs/web")
    assert code == 1 and "rollout status: replicasets are not supported" in err


def test_a_deployment_s_selector_is_immutable(server: ApiServer, capsys: Capture, tmp_path: Path) -> None:
    changed = tmp_path / "web.yaml"
    changed.write_text(MANIFEST.replace("{app: web}", "{app: web, tier: front}"))
    code, _, err = out(server, capsys, "apply", "-f", str(changed))
    assert code == 1
    assert "Deployment default/web: spec.selector: Invalid value: " in err and "field is immutable" in err
