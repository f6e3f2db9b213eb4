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
#: Each master's own presence (`MasterPresence`, retained, with its Will), one topic per master id (docs/ha.md).
MASTERS = f"{ROOT}/masters"
ALL_MASTERS_ONLINE = f"{MASTERS}/+/online"
CLIENT_REPLIES = f"{ROOT}/clients"  # + /<client-id>/reply
NODES = f"{ROOT}/nodes"
#: The data path's tables (model/netstate.py), retained, the whole table each time: routes (every node's podCIDR and
#: node IP) and services (every Service with its endpoints); see docs/networking.md.
ROUTES = f"{ROOT}/routes"
SERVICES = f"{ROOT}/services"


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


def node_witness(node: str) -> str:
    """The node's `Witness` (retained): the highest master term it accepted and what it sees of that master."""
    return f"{_node(node)}/witness"


def master_online(master_id: str) -> str:
    # One whole topic level, as a node name: a master id with '/', '+' or '#' would break ACLs and wildcards.
    check_dns1123_subdomain(master_id, "master id")
    return f"{MASTERS}/{master_id}/online"


def master_of(topic: str) -> str:
    """The master id in a master-scoped topic (`edgekube/v1/masters/<id>/...`)."""
    parts = topic.split("/")
    if len(parts) < 5 or "/".join(parts[:3]) != MASTERS:
        raise ValidationError(f"topic {topic!r}: not a master topic (expected {MASTERS}/<master-id>/...)")
    return parts[3]


#: Two-master HA (docs/ha.md): the active's replication state and stream to its standby.
ALL_MASTERS_REPLICATION = f"{MASTERS}/+/replication"


def master_replication(master_id: str) -> str:
    """Retained ReplicationFlag of an active master: whether its standby holds every acknowledged write."""
    return master_online(master_id).removesuffix("/online") + "/replication"


def master_replicate(master_id: str) -> str:
    """Replication frames from the active to this (standby) master, QoS 1, in order."""
    return master_online(master_id).removesuffix("/online") + "/replicate"


def master_ack(master_id: str) -> str:
    """ReplicationAcks from the standby to this (active) master."""
    return master_online(master_id).removesuffix("/online") + "/ack"


def master_sync(master_id: str) -> str:
    """SyncRequests from a standby to this (active) master."""
    return master_online(master_id).removesuffix("/online") + "/sync"


def client_stream(client_id: str, stream: str) -> str:
    """A stream to one client (a watch's changes): only that client may read it (the ACL's `%c` pattern)."""
    return f"{CLIENT_REPLIES}/{client_id}/streams/{stream}"


def client_of_reply(topic: str) -> str | None:
    """The client id in `edgekube/v1/clients/<client-id>/reply`, or None for any other topic."""
    parts = topic.split("/")
    if len(parts) == 5 and f"{parts[0]}/{parts[1]}/{parts[2]}" == CLIENT_REPLIES and parts[4] == "reply":
        return parts[3] or None
    return None


def client_reply(client_id: str) -> str:
    return f"{CLIENT_REPLIES}/{client_id}/reply"


ALL_NODE_STATUS = f"{NODES}/+/status"
ALL_NODE_HEARTBEAT = f"{NODES}/+/heartbeat"
ALL_NODE_ONLINE = f"{NODES}/+/online"
ALL_NODE_EVENTS = f"{NODES}/+/events"
ALL_NODE_METRICS = f"{NODES}/+/metrics"
ALL_NODE_WITNESS = f"{NODES}/+/witness"


def node_of(topic: str) -> str:
    """The node name in a node-scoped topic (`edgekube/v1/nodes/<node>/...`)."""
    parts = topic.split("/")
    if len(parts) < 4 or "/".join(parts[:3]) != NODES:
        raise ValidationError(f"topic {topic!r}: not a node topic (expected {NODES}/<node>/...)")
    return parts[3]
