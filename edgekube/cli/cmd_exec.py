"""`ekctl exec [-it] POD [-c CONTAINER] [--exec-timeout D] -- COMMAND [ARG...]`: run a command in a container.

The master forwards the request to the pod's node, whose agent runs it through Podman's exec API and answers with
the output (stdout and stderr together, at most 256 KiB) and the exit code, which becomes ekctl's exit status as
with kubectl. With -t the command gets a terminal: the node pushes its output on this client's stream
(docs/protocol.md, "exec -it"), and ekctl sends each keystroke (the local terminal in raw mode) and each resize as a
request the master forwards; it exits with the command's exit code.
"""

from __future__ import annotations

import base64
import os
import queue
import signal
import sys
import termios
import threading
import time
import tty
import uuid
from typing import Any

from edgekube.bus import topics
from edgekube.cli.cmd_logs import _default_container, _pod
from edgekube.cli.context import Context
from edgekube.cli.kinds import POD, split_args
from edgekube.model.errors import EdgekubeError, ValidationError
from edgekube.model.watch import FOLLOW_LEASE_SECONDS, LogChunk
from edgekube.model.wire import ApiRequest, Verb


def run(ctx: Context) -> int:
    args = ctx.args
    if args.stdin and not args.tty:
        raise ValidationError(
            "exec: -i without -t (a pipe to the command's stdin) is not supported yet", hint="use -it, or neither"
        )
    command = list(args.exec_command)
    if not command:
        raise ValidationError("you must specify at least one command for the container", hint="ekctl exec POD -- CMD")
    res, names = split_args([args.pod] if "/" in args.pod else ["pod", args.pod])
    if res != POD or len(names) != 1:
        raise ValidationError("exec: expected one pod name (POD or pod/POD)")
    container = args.container or _default_container(ctx, _pod(ctx, names[0]))
    if args.tty:
        return interactive(ctx, names[0], container, command)
    code, output = ctx.client().exec(ctx.namespace, names[0], container, command, args.exec_timeout)
    ctx.out.write(output)
    ctx.out.flush()
    return code


class _Keys:
    """Sends keystrokes and resizes in order (`ack` numbers them), from the reader thread and the main loop."""

    def __init__(self, ctx: Context, base: ApiRequest) -> None:
        self.client, self.base = ctx.client(), base
        self._lock = threading.Lock()
        self._seq = 0

    def send(self, **update: Any) -> None:
        with self._lock:
            self._seq += 1
            self.client.follow(self.base.model_copy(update={**update, "ack": self._seq}))


def _size(fd: int) -> tuple[int, int]:
    try:
        size = os.get_terminal_size(fd)
    except OSError:
        return 24, 80
    return size.lines or 24, size.columns or 80  # a fresh pty may say 0 x 0


def interactive(ctx: Context, name: str, container: str | None, command: list[str]) -> int:
    client = ctx.client()
    session: Any = client.session
    if not hasattr(session, "subscribe"):
        raise ValidationError("exec -it needs an MQTT connection to the broker")
    stream = uuid.uuid4().hex[:16]
    inbox: queue.Queue[tuple[str, Any]] = queue.Queue()
    session.subscribe(topics.client_stream(session.client_id, stream), lambda msg: inbox.put(("chunk", msg)))
    fd = sys.stdin.fileno()
    terminal = os.isatty(fd)
    if not terminal:
        ctx.err.write("Unable to use a TTY - input is not a terminal or the right kind of file\n")
    rows, cols = _size(fd)
    base = ApiRequest(verb=Verb.EXEC, kind="Pod", namespace=ctx.namespace, name=name, container=container, tty=True)
    base = base.model_copy(update={"stream": stream})
    client.follow(base.model_copy(update={"command": command, "rows": rows, "cols": cols}))
    keys = _Keys(ctx, base)

    def read_keys() -> None:
        try:
            while data := os.read(fd, 4096):
                keys.send(stdin=base64.b64encode(data).decode())
        except (OSError, EdgekubeError) as exc:
            inbox.put(("error", exc))

    resized = threading.Event()
    previous_handler = signal.signal(signal.SIGWINCH, lambda _sig, _frame: resized.set()) if terminal else None
    saved = termios.tcgetattr(fd) if terminal else None
    out = sys.stdout.buffer
    try:
        if terminal:
            tty.setraw(fd)
        threading.Thread(target=read_keys, name="exec-keys", daemon=True).start()
        quiet_since = time.monotonic()
        while True:
            if resized.is_set():  # SIGWINCH: the local terminal's new size, to the command's terminal
                resized.clear()
                rows, cols = _size(fd)
                keys.send(rows=rows, cols=cols)
            try:
                what, item = inbox.get(timeout=0.2)
            except queue.Empty:
                if time.monotonic() - quiet_since >= FOLLOW_LEASE_SECONDS / 3:
                    keys.send()  # keeps the node's terminal from hanging up
                    quiet_since = time.monotonic()
                continue
            if what == "error":
                raise EdgekubeError(f"exec -it in {name} ended: {item}")
            chunk = LogChunk.decode(item.payload, what="terminal output")
            out.write(chunk.text.encode())
            out.flush()
            if chunk.end:
                return chunk.exit_code if chunk.exit_code is not None else 1
    finally:
        if saved is not None:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        if previous_handler is not None:
            signal.signal(signal.SIGWINCH, previous_handler)
