"""The broker's ACL, generated from edgekube.bus.topics: one explicit `user` block per identity, per role.

Mosquitto takes each client certificate's CN as the username (`use_identity_as_username true`), so the blocks are
keyed by certificate name. No `pattern` line grants a node topic: a pattern keyed by the username would let any
certificate holder whose CN happens to be a node's name speak for that node; here only names the CA issued as
nodes get node topics. The one pattern left is each client's own reply topic, keyed by its client id.
"""

from __future__ import annotations

from collections.abc import Iterable

from edgekube.bus import topics
from edgekube.model.names import NodeName
from edgekube.security.ca import Identity, Role

#: Every client reads the answers to its own requests (`edgekube/v1/clients/<client-id>/reply`).
REPLY_PATTERN = f"pattern read {topics.client_reply('%c')}"
#: ... and its own streams (`ekctl get -w`: `edgekube/v1/clients/<client-id>/streams/<stream>`), written by the master.
STREAM_PATTERN = f"pattern read {topics.client_stream('%c', '#')}"


def rules(role: Role, name: str) -> list[tuple[str, str]]:
    """(access, topic filter) pairs for one identity; access is read, write or readwrite."""
    if role is Role.MASTER:
        return [("readwrite", f"{topics.ROOT}/#")]
    if role is Role.NODE:
        node = NodeName(name)
        return [
            ("read", topics.node_desired(node)),
            ("read", topics.node_rpc(node)),
            ("write", topics.node_status(node)),
            ("write", topics.node_heartbeat(node)),
            ("write", topics.node_online(node)),
            ("write", topics.node_events(node)),
            ("write", topics.node_metrics(node)),
            # its Witness of the masters (docs/ha.md): only its own, so no node can vouch for another
            ("write", topics.node_witness(node)),
            # the master's presence: a node cut off from the master shows it on its LEDs
            ("read", topics.MASTER_ONLINE),
            # each master's presence (active or standby, its term): what the Witness is made of
            ("read", topics.ALL_MASTERS_ONLINE),
            # the data path's tables (docs/networking.md): every node routes and proxies for the whole cluster
            ("read", topics.ROUTES),
            ("read", topics.SERVICES),
            # `logs` and `identify` are answered by the node on the caller's response topic; `logs -f` streams.
            ("write", topics.client_reply("+")),
            ("write", topics.client_stream("+", "#")),
        ]
    if role is Role.ADMIN:
        return [
            ("write", topics.APPLY),
            ("write", topics.API_REQUEST),
            ("write", topics.API_READ),
            ("read", topics.APPLY_RESULT),
            ("read", topics.MASTER_ONLINE),
            ("read", topics.ALL_MASTERS_ONLINE),  # ekctl finds the active master by its presence
        ]
    if role is Role.VIEWER:
        return [("write", topics.API_READ), ("read", topics.MASTER_ONLINE), ("read", topics.ALL_MASTERS_ONLINE)]
    return []  # the broker's own certificate is not a client


def render(identities: Iterable[Identity]) -> str:
    """The acl_file text for these identities (pass only the ones not revoked)."""
    lines = [
        "# Mosquitto ACL written by `edgekube ca acl`: regenerate it after issuing or revoking; reload the broker.",
        "# Usernames are certificate names (use_identity_as_username true). Anything not granted here is denied.",
        "",
        "# every client: the answers to its own requests",
        REPLY_PATTERN,
        STREAM_PATTERN,
    ]
    for ident in sorted(identities, key=lambda i: (i.role, i.name)):
        role = Role(ident.role)
        grants = rules(role, ident.name)
        if not grants:
            continue
        lines += ["", f"# {role.value}", f"user {ident.name}"]
        lines += [f"topic {access} {topic}" for access, topic in grants]
    return "\n".join(lines) + "\n"
