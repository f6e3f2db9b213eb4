"""API requests and applies over MQTT: answered at once after a read, after the next group commit after a write.

The master's handlers for `edgekube/v1/api` and `edgekube/v1/apply` (registered by master.app). A request's
writes are made under the master's lock in a deferred batch; its answer waits in `owed` until the writes are
on flash (master.app's committer, or a pass, commits and then sends them). Logs and identify are the node's:
forwarded.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from edgekube.bus import topics
from edgekube.bus.protocol import Message, MessageBus
from edgekube.master.api import Api
from edgekube.master.cache import CachedStore
from edgekube.master.encoding import encode_response, fitted
from edgekube.master.liveness import Liveness
from edgekube.master.top import Top
from edgekube.master.watch import Watches
from edgekube.model.errors import EdgekubeError, NotFoundError, ValidationError
from edgekube.model.types import Obj
from edgekube.model.wire import READ_VERBS, ApiRequest, ApiResponse, ApplyResult, ErrorInfo, Verb

log = logging.getLogger(__name__)

Ack = Callable[[], None]


class Requests:
    """Handlers of API requests and applies; `lock` is the master's, `wake` runs the master's loop soon."""

    def __init__(
        self,
        bus: MessageBus,
        store: CachedStore,
        api: Api,
        liveness: Liveness,
        *,
        lock: threading.RLock,
        wake: Callable[[], None],
        top: Top | None = None,
    ) -> None:
        self.bus = bus
        #: Answers verb top from the usage the master holds in memory (None: top is refused).
        self.top = top
        self.store = store
        self.api = api
        self.liveness = liveness
        self._lock = lock
        self._wake = wake
        #: Answers to requests whose writes wait for the next group commit (see CachedStore.batch).
        self._acks: list[Ack] = []
        #: Set while answers are owed (the master's committer waits on it).
        self.owed = threading.Event()
        #: Verb watch (`ekctl get -w`); None: refused.
        self.watches: Watches | None = None
        #: Verb dashboard (`ekctl dashboard`): issues a login for the dashboard's role; None: the dashboard is off.
        self.dashboard_login: Callable[[str], Obj] | None = None

    def _owe(self, ack: Ack) -> None:
        """Answered once on flash: by the committer's next group commit (or a pass's, if sooner)."""
        self._acks.append(ack)
        self.owed.set()

    def take(self) -> list[Ack]:
        """The answers owed so far (call under the master's lock, right after a commit; then send them)."""
        acks, self._acks = self._acks, []
        return acks

    def reply(self, msg: Message, response: ApiResponse | ApplyResult) -> None:
        """Answer on the request's response topic (if it gave one), within the message size limit."""
        if msg.response_topic:
            self.bus.publish(msg.response_topic, fitted(encode_response(response)), correlation=msg.correlation)

    def on_read(self, msg: Message) -> None:
        """`edgekube/v1/api/read`: get, list and logs only, so a broker ACL can let viewers read and not write."""
        req = ApiRequest.decode(msg.payload, what="api request")
        if req.verb not in READ_VERBS:
            reads = ", ".join(sorted(READ_VERBS))
            problem = ValidationError(
                f"verb {req.verb.value!r} is not allowed on {topics.API_READ}: that topic is read-only ({reads})",
                hint=f"send changes to {topics.API_REQUEST} (with an identity allowed to write)",
            )
            self.reply(msg, ApiResponse(ok=False, error=ErrorInfo.of(problem)))
            return
        if req.kind == "Secret":  # as Kubernetes' `view` ClusterRole: viewers read everything but Secrets
            problem = ValidationError(
                f'secrets is forbidden: {topics.API_READ} cannot {req.verb.value} resource "secrets"',
                hint=f"Secrets are read on {topics.API_REQUEST}, with an identity allowed to write",
            )
            self.reply(msg, ApiResponse(ok=False, error=ErrorInfo.of(problem)))
            return
        self.on_api(msg, req)

    def on_api(self, msg: Message, req: ApiRequest | None = None) -> None:
        req = req if req is not None else ApiRequest.decode(msg.payload, what="api request")
        if req.verb in (Verb.LOGS, Verb.EXEC, Verb.CP, Verb.PORT_FORWARD):  # only logs is a read verb
            self._forward_logs(msg, req)
            return
        if req.verb is Verb.IDENTIFY:
            self._forward_identify(msg, req)
            return
        if req.verb is Verb.TOP:
            self._top(msg, req)
            return
        if req.verb is Verb.WATCH:
            self._watch(msg, req)
            return
        if req.verb is Verb.DASHBOARD:
            self._dashboard(msg, req)
            return
        with self._lock, self.store.batch("defer"):
            writes = self.store.writes
            response = self.api.handle(req)
            wrote = self.store.writes != writes
            if wrote:
                self._owe(lambda: self.reply(msg, response))
        if not wrote:
            self.reply(msg, response)
        self._wake()

    def on_apply(self, msg: Message) -> None:
        """`edgekube/v1/apply`: any MQTT client publishes YAML/JSON; the outcome goes to apply/result."""
        with self._lock, self.store.batch("defer"):
            writes = self.store.writes
            try:
                result = ApplyResult(ok=True, outcomes=self.api.apply(msg.payload, source="edgekube/v1/apply"))
            except Exception as exc:
                if not isinstance(exc, EdgekubeError):
                    log.exception("apply failed")
                else:
                    log.warning("apply rejected: %s", exc)
                result = ApplyResult(ok=False, error=ErrorInfo.of(exc))
            wrote = self.store.writes != writes
            if wrote:
                self._owe(lambda: self._publish_apply_result(msg, result))
        if not wrote:
            self._publish_apply_result(msg, result)
        self._wake()

    def _publish_apply_result(self, msg: Message, result: ApplyResult) -> None:
        self.bus.publish(topics.APPLY_RESULT, result.encode())
        if msg.response_topic:
            self.bus.publish(msg.response_topic, result.encode(), correlation=msg.correlation)

    def _top(self, msg: Message, req: ApiRequest) -> None:
        """Verb top: answered at once from memory (nothing is written)."""
        if self.top is None:
            raise ValidationError("verb: 'top' is not served by this master")
        with self._lock:
            response = self.top.answer(req)
        self.reply(msg, response)

    def _watch(self, msg: Message, req: ApiRequest) -> None:
        """Open, renew or close a watch (master/watch.py); answered at once.

        `object.opened` is true when the master did not know the watch (a new one, or one a restarted or new active
        master lost: the client then lists again).
        """
        if self.watches is None:
            raise ValidationError("verb: 'watch' is not served by this master")
        with self._lock:
            opened = self.watches.open(req, msg.response_topic)
        self.reply(msg, ApiResponse(ok=True, object={"stream": req.stream, "opened": opened}))

    def _dashboard(self, msg: Message, req: ApiRequest) -> None:
        """A one-time dashboard login: admin only if asked where only admins may write (the broker's ACL)."""
        if self.dashboard_login is None:
            raise ValidationError(
                "dashboard: the dashboard is off on this master", hint="start the master with --dashboard HOST:PORT"
            )
        role = "admin" if req.kind == "admin" and msg.topic != topics.API_READ else "viewer"
        self.reply(msg, ApiResponse(ok=True, object=self.dashboard_login(role)))

    def _forward_logs(self, msg: Message, req: ApiRequest) -> None:
        """Logs live on the node: forward the request with the caller's response topic; the agent answers."""
        name, namespace = req.name or "", req.namespace or "default"
        with self._lock:
            try:
                node = self.store.peek("Pod", namespace, name)["spec"].get("nodeName")
            except NotFoundError as exc:
                self.reply(msg, ApiResponse(ok=False, error=ErrorInfo.of(exc)))
                return
        if not node:
            problem = EdgekubeError(
                f"pod {namespace}/{name} is not scheduled to a node yet", hint=f"see `ekctl describe pod {name}`"
            )
            self.reply(msg, ApiResponse(ok=False, error=ErrorInfo.of(problem)))
            return
        if not self.liveness.ready(node):
            problem = EdgekubeError(
                f"node {node} is not ready: {self.liveness.reason(node)}", hint="logs come from the node itself"
            )
            self.reply(msg, ApiResponse(ok=False, error=ErrorInfo.of(problem)))
            return
        self.bus.publish(
            topics.node_rpc(node), msg.payload, response_topic=msg.response_topic, correlation=msg.correlation
        )

    def _forward_identify(self, msg: Message, req: ApiRequest) -> None:
        """`ekctl node identify`: the node blinks its LEDs; forwarded like logs, the agent answers the caller."""
        node = req.name or ""
        try:
            with self._lock:
                self.store.peek("Node", "", node)
            if not self.liveness.ready(node):
                raise EdgekubeError(
                    f"node {node} is not ready: {self.liveness.reason(node)}",
                    hint="identify needs the node's agent connected; a node cut off shows the CutOff pattern itself",
                )
        except EdgekubeError as exc:
            self.reply(msg, ApiResponse(ok=False, error=ErrorInfo.of(exc)))
            return
        self.bus.publish(
            topics.node_rpc(node), msg.payload, response_topic=msg.response_topic, correlation=msg.correlation
        )
