"""Every MQTT topic edgekube uses; node-scoped topics carry the node name as one whole level (for broker ACLs)."""

from __future__ import annotations

from edgekube.model.errors import ValidationError
from edgekube.model.names import check_dns1123_subdomain

ROOT = "edgekube/v1"
APPLY = f"{ROOT}/apply"
APPLY_RESULT = f"{ROOT}/apply/result"
API_REQUEST = f"{ROOT}/api/request"
#: Read-only requests (get, list, logs): the master refuses any other verb here, so a broker ACL that lets a viewer
#: write only this topic lets it read everything and change nothing.
API_READ = f"{ROOT}/api/read"
MASTER_ONLINE = f"{ROOT}/master/online"
CLIENT_REPLIES = f"{ROOT}/clients"  # + /<client-id>/reply
NODES = f"{ROOT}/nodes"


def _node(node: str) -> str:
    # A node name with '/', '+' or '#' would break topic confinement; Kubernetes' name rules exclude them.
    check_dns1123_subdomain(node, "node name")
    return f"{NODES}/{node}"


def node_desired(node: str) -> str:
    return f"{_node(node)}/desired"


def node_status(node: str) -> str:
    return f"{_node(node)}/status"


def node_heartbeat(node: str) -> str:
    return f"{_node(node)}/heartbeat"


def node_online(node: str) -> str:
    return f"{_node(node)}/online"


def node_rpc(node: str) -> str:
    return f"{_node(node)}/rpc"


def node_events(node: str) -> str:
    return f"{_node(node)}/events"


def node_metrics(node: str) -> str:
    """Volatile telemetry (QoS 0, not retained): the node's usage history and its containers' usage."""
    return f"{_node(node)}/metrics"


def client_reply(client_id: str) -> str:
    return f"{CLIENT_REPLIES}/{client_id}/reply"


ALL_NODE_STATUS = f"{NODES}/+/status"
ALL_NODE_HEARTBEAT = f"{NODES}/+/heartbeat"
ALL_NODE_ONLINE = f"{NODES}/+/online"
ALL_NODE_EVENTS = f"{NODES}/+/events"
ALL_NODE_METRICS = f"{NODES}/+/metrics"


def node_of(topic: str) -> str:
    """The node name in a node-scoped topic (`edgekube/v1/nodes/<node>/...`)."""
    parts = topic.split("/")
    if len(parts) < 4 or "/".join(parts[:3]) != NODES:
        raise ValidationError(f"topic {topic!r}: not a node topic (expected {NODES}/<node>/...)")
    return parts[3]
