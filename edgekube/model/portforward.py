"""`ekctl port-forward` limits shared by the CLI (cli/cmd_portforward.py) and the agent (agent/portforward.py)."""

from __future__ import annotations

#: Node → client: chunks an agent sends beyond the last one the client acknowledged (`received`), and the most
#: bytes one chunk carries (base64 in a LogChunk's text: about 43 KiB a message, under the 1 MiB limit).
PF_WINDOW_CHUNKS = 8
PF_CHUNK_BYTES = 32 * 1024
#: Client → node: the most bytes one request carries (base64: about 342 KiB, under the 1 MiB message limit); ekctl
#: sends what its socket holds, up to this, each time the previous request is answered.
PF_SEND_BYTES = 256 * 1024
#: Bytes per second one forwarded connection carries each way at most (the node's link and the broker are shared).
PF_RATE_BYTES = 8 * 1024 * 1024
#: Forwarded connections one node serves at once.
PF_MAX_SESSIONS = 32
#: A connection whose client sent nothing (data, ack or renewal) for this long is closed; the client renews every
#: third of it.
PF_LEASE_SECONDS = 30.0
