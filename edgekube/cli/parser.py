"""ekctl's argparse definition: subcommands, and global flags accepted before or after the subcommand."""

from __future__ import annotations

import argparse
import importlib
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from edgekube.cli.kinds import SUPPORTED
from edgekube.cli.output import FORMATS, output_format

if TYPE_CHECKING:
    from edgekube.cli.context import Context

DEFAULT_TIMEOUT = 10.0
DEFAULT_WAIT_TIMEOUT = 300.0


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be greater than 0")
    return value


def _duration(text: str) -> float:
    """`30s`, `2m`, `1m30s`, `1h` or plain seconds (`45`), as kubectl's durations."""
    match = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?", text.strip())
    if not text.strip() or match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration (e.g. 30s, 2m, 1m30s)")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port (1-65535)")
    return int(text)


def _replicas(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: the replica count must be an integer >= 0")
    return int(text)


def _global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """Add the global flags: with defaults to the top parser, with SUPPRESS to each subcommand.

    So `ekctl -n x get` and `ekctl get -n x` both work, and a subcommand never resets a flag given before it.
    """

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    group = parser.add_argument_group("connection and global options")
    group.add_argument(
        "--mqtt-host",
        default=default(None),
        metavar="HOST",
        help="MQTT broker (default: $EDGEKUBE_MQTT_HOST, .edgekube/cluster.json, 127.0.0.1)",
    )
    group.add_argument(
        "--mqtt-port",
        type=_port,
        default=default(None),
        metavar="PORT",
        help="MQTT port (default: $EDGEKUBE_MQTT_PORT, .edgekube/cluster.json, 1883)",
    )
    group.add_argument(
        "--broker",
        action="append",
        default=default(None),
        metavar="HOST:PORT",
        help="an MQTT broker of the cluster, repeatable, in failover order (replaces --mqtt-host/--mqtt-port; "
        "default: $EDGEKUBE_BROKERS, .edgekube/cluster.json's brokers)",
    )
    for name, what in (("ca", "the fleet's CA certificate"), ("cert", "your certificate"), ("key", "its key")):
        group.add_argument(
            f"--tls-{name}",
            default=default(None),
            metavar="FILE",
            help=f"TLS: {what} (default: $EDGEKUBE_TLS_{name.upper()}, .edgekube/cluster.json; none: plain TCP)",
        )
    group.add_argument(
        "--timeout",
        type=_positive,
        default=default(DEFAULT_TIMEOUT),
        metavar="SECONDS",
        help=f"give up connecting or awaiting an answer (default {DEFAULT_TIMEOUT:g})",
    )
    group.add_argument("-n", "--namespace", default=default(None), help="namespace (default: default)")
    group.add_argument(
        "--debug", action="store_true", default=default(False), help="show a traceback for unexpected errors"
    )


def _resource_args(parser: argparse.ArgumentParser, *, optional: bool = False, types: str = SUPPORTED) -> None:
    # Two positionals rather than one with a tuple metavar, which argparse's help formatter cannot print.
    parser.add_argument("type", nargs="?" if optional else None, metavar="TYPE", help=f"{types}; or TYPE/NAME")
    parser.add_argument("names", nargs="*", metavar="NAME", help="object names (or more TYPE/NAME)")
    parser.set_defaults(trailing="names")


def _label_command(p: argparse.ArgumentParser, noun: str) -> None:
    p.add_argument(
        "args",
        nargs="+",
        metavar="TYPE NAME... KEY=VALUE... KEY-",
        help=f"pods, nodes, rc, rs, pv, pvc, sc (or TYPE/NAME); {noun}s to set (KEY=VALUE) or remove (KEY-)",
    )
    p.add_argument("--overwrite", action="store_true", help=f"allow replacing a {noun}'s existing value")
    p.add_argument("-l", "--selector", help="act on every object matching this label selector")
    p.add_argument("--all", action="store_true", help="act on every object of the type in the namespace")
    p.set_defaults(trailing="args")


def _node_command(p: argparse.ArgumentParser) -> None:
    p.add_argument("names", nargs="*", metavar="NODE", help="node names (or node/NAME)")
    p.add_argument("-l", "--selector", help="act on every node matching this label selector")
    p.set_defaults(trailing="names")


def _lazy(target: str) -> Callable[[Context], int]:
    """A command's run function, its module imported only when the command runs (ekctl starts in a few ms)."""
    module, _, name = target.partition(":")

    def run(ctx: Context) -> int:
        function: Callable[[Context], int] = getattr(importlib.import_module(f"edgekube.cli.{module}"), name or "run")
        return function(ctx)

    run.__qualname__ = target
    return run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ekctl", description="Control an edgekube cluster (a kubectl for Raspberry Pi fleets over MQTT)."
    )
    _global_options(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str, target: str) -> argparse.ArgumentParser:
        """`target` names the command module (`cmd_get`: its `run`) or a function in it (`cmd_label:run_label`)."""
        p = sub.add_parser(name, help=help_text, description=help_text)
        _global_options(p, suppress=True)
        p.set_defaults(run=_lazy(target))
        return p

    p = command("apply", "create or update objects from manifest files", "cmd_apply")
    p.add_argument(
        "-f",
        "--filename",
        action="append",
        required=True,
        metavar="FILE",
        help="manifest file, directory of *.yaml|*.yml|*.json, or - for stdin (repeatable)",
    )
    p.add_argument("--wait", action="store_true", help="wait until the applied pods are running")
    p.add_argument(
        "--wait-timeout",
        type=_positive,
        default=DEFAULT_WAIT_TIMEOUT,
        metavar="SECONDS",
        help=f"how long --wait waits (default {DEFAULT_WAIT_TIMEOUT:g})",
    )

    p = command("get", "list objects or show some by name", "cmd_get")
    _resource_args(p, types=f"{SUPPORTED}; several as TYPE,TYPE")
    p.add_argument("-l", "--selector", help="label selector, e.g. app=web,tier!=db")
    p.add_argument(
        "--annotation-selector",
        metavar="EXPR",
        help="the label selector grammar over annotations, e.g. 'team=edge,owner in (ann,bo),!deprecated'",
    )
    p.add_argument(
        "-o",
        "--output",
        type=output_format,
        metavar="FORMAT",
        help=f"output format: {'|'.join(FORMATS)}|jsonpath=TEMPLATE|custom-columns=HEADER:PATH,...",
    )
    p.add_argument("-A", "--all-namespaces", action="store_true", help="list across all namespaces")
    p.add_argument("--no-headers", action="store_true", help="leave out the table header")
    p.add_argument("--show-labels", action="store_true", help="a last column with every label")
    p.add_argument(
        "-L",
        "--label-columns",
        action="append",
        metavar="KEY",
        help="a column with this label's value (repeatable, or comma-separated)",
    )
    p.add_argument("--sort-by", metavar="JSONPATH", help="sort by a field, e.g. .metadata.creationTimestamp")
    p.add_argument(
        "-w", "--watch", action="store_true", help="after the list, print a line per change (MQTT stream; Ctrl-C ends)"
    )
    p.add_argument("--watch-only", action="store_true", help="print only the changes, not the list first")

    p = command("describe", "show details of objects", "cmd_describe")
    _resource_args(
        p,
        types="pods (po), nodes (no), replicationcontrollers (rc), replicasets (rs), persistentvolumes (pv), "
        "persistentvolumeclaims (pvc), storageclasses (sc), configmaps (cm), secrets, services (svc)",
    )
    p.add_argument("-l", "--selector", help="label selector")

    p = command("delete", "delete objects by name, selector or manifest", "cmd_delete")
    _resource_args(p, optional=True)
    p.add_argument("-f", "--filename", action="append", metavar="FILE", help="delete the objects in these manifests")
    p.add_argument("-l", "--selector", help="delete every object matching this label selector")
    p.add_argument("--ignore-not-found", action="store_true", help="treat a missing object as deleted")
    p.add_argument(
        "--cascade",
        nargs="?",
        const="background",
        default="background",
        metavar="MODE",
        help="background (default): a controller's pods are deleted too; orphan (or false): they stay",
    )

    p = command("scale", "set the number of replicas of a replicationcontroller or replicaset", "cmd_scale")
    _resource_args(p, types="replicationcontrollers (rc), replicasets (rs)")
    p.add_argument("--replicas", type=_replicas, required=True, metavar="N", help="the new desired number of pods")
    p.add_argument("-l", "--selector", help="scale every object matching this label selector")
    p.add_argument("--all", action="store_true", help="scale every object of the type in the namespace")

    p = command("label", "add, change or remove labels", "cmd_label:run_label")
    _label_command(p, "label")
    p = command("annotate", "add, change or remove annotations", "cmd_label:run_annotate")
    _label_command(p, "annotation")

    _node_command(command("cordon", "mark nodes unschedulable", "cmd_node:run_cordon"))
    _node_command(command("uncordon", "mark nodes schedulable again", "cmd_node:run_uncordon"))
    p = command("drain", "cordon nodes and evict their pods (waits for the answer at least 60 s)", "cmd_node:run_drain")
    _node_command(p)

    p = command("node", "act on a node itself: identify (blink its LEDs)", "cmd_node:run_node")
    node_sub = p.add_subparsers(dest="node_command", required=True, metavar="SUBCOMMAND")
    p = node_sub.add_parser(
        "identify",
        help="blink a node's LEDs so it can be found in the rack",
        description="blink a node's LEDs (the Identify pattern, docs/leds.md) so it can be found in the rack",
    )
    _global_options(p, suppress=True)
    p.add_argument("node", metavar="NODE", help="node name (or node/NAME)")
    p.add_argument(
        "--for", dest="duration", type=_duration, default=30.0, metavar="DURATION",
        help="how long (default 30s; at most 1h), e.g. 30s, 2m",
    )  # fmt: skip
    p.add_argument("--cancel", action="store_true", help="stop blinking now")

    p = command("dashboard", "print a one-time login URL for the master's live dashboard", "cmd_dashboard")
    p.add_argument("--viewer", action="store_true", help="log the browser in read-only (no identify)")

    p = command("logs", "print a container's logs", "cmd_logs")
    p.add_argument("pod", nargs="?", metavar="POD", help="pod name (or pod/NAME); or -l SELECTOR")
    p.add_argument("-c", "--container", help="container name (default: the first)")
    p.add_argument(
        "--tail", type=int, default=None, metavar="N", help="last N lines only (default -1: all; 10 with -l)"
    )
    p.add_argument("-p", "--previous", action="store_true", help="the last terminated run of the container")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines, across restarts (Ctrl-C ends)")
    p.add_argument("--since", type=_duration, metavar="DURATION", help="only lines newer than this, e.g. 5s, 2m, 3h")
    p.add_argument("--since-time", metavar="TIME", help="only lines since this RFC 3339 time")
    p.add_argument("--timestamps", action="store_true", help="prefix each line with its RFC 3339 time")
    p.add_argument("-l", "--selector", help="every pod matching this label selector, lines prefixed [pod/NAME/C]")
    p.add_argument("--prefix", action="store_true", help="prefix each line with [pod/NAME/CONTAINER]")

    p = command("exec", "run a command in a container and exit with its status: exec POD -- CMD [ARG...]", "cmd_exec")
    p.add_argument("pod", metavar="POD", help="pod name (or pod/NAME)")
    p.add_argument("-c", "--container", help="container name (default: the first)")
    p.add_argument("-i", "--stdin", action="store_true", help="pass stdin to the command (with -t)")
    p.add_argument("-t", "--tty", action="store_true", help="give the command a terminal: an interactive session")
    p.add_argument(
        "--exec-timeout", type=_duration, default=60.0, metavar="DURATION",
        help="stop waiting for the command after this long (default 60s, at most 1h)",
    )  # fmt: skip
    p.add_argument("exec_command", nargs="*", metavar="-- COMMAND [ARG...]")

    p = command("cp", "copy files to or from a container: cp POD:PATH LOCAL, cp LOCAL POD:PATH", "cmd_cp")
    p.add_argument("source", metavar="SRC", help="POD:PATH or a local path")
    p.add_argument("dest", metavar="DEST", help="a local path or POD:PATH")
    p.add_argument("-c", "--container", help="container name (default: the first)")

    help_text = "forward local ports to a pod: port-forward pod/NAME|svc/NAME [LOCAL:]REMOTE..."
    p = command("port-forward", help_text, "cmd_portforward")
    p.add_argument("target", metavar="pod/NAME|svc/NAME", help="a pod (NAME or pod/NAME) or a service (svc/NAME)")
    p.add_argument("ports", nargs="+", metavar="[LOCAL:]REMOTE", help="8080:80, 8080 (same port), :80 (a free one)")
    p.add_argument("--address", action="append", help="local address to listen on (repeatable; default 127.0.0.1)")

    p = command("top", "show CPU and memory use of nodes or pods (from the master's memory)", "cmd_top")
    p.add_argument("resource", metavar="nodes|pods", help="nodes (node, no) or pods (pod, po)")
    p.add_argument("name", nargs="?", metavar="NAME", help="only this node or pod")
    p.add_argument("-A", "--all-namespaces", action="store_true", help="pods of every namespace")
    p.add_argument("--containers", action="store_true", help="pods: one line per container")
    p.add_argument("-l", "--selector", help="label selector")
    p.add_argument("--sort-by", metavar="cpu|memory", help="sort by CPU or memory use (largest first)")
    p.add_argument("--no-headers", action="store_true", help="leave out the table header")

    p = command("create", "create objects from manifest files, or a configmap or secret", "cmd_create")
    p.add_argument(
        "-f",
        "--filename",
        action="append",
        metavar="FILE",
        help="manifest file, directory of *.yaml|*.yml|*.json, or - for stdin (repeatable); objects are created, "
        "never updated (metadata.generateName names a new one each time)",
    )
    create_sub = p.add_subparsers(dest="create_kind", required=False, metavar="configmap|secret")
    for kind, help_text in (("configmap", "create a configmap"), ("secret", "create a secret (generic)")):
        p = create_sub.add_parser(kind, aliases=["cm"] if kind == "configmap" else [], help=help_text)
        _global_options(p, suppress=True)
        p.set_defaults(create_kind=kind)
        if kind == "secret":
            p.add_argument("generic", choices=["generic"], help="the secret's form (only generic)")
            p.add_argument("--type", default="", help="the secret's type (default Opaque)")
        p.add_argument("name", metavar="NAME")
        p.add_argument("--from-literal", action="append", metavar="KEY=VALUE", help="a key and its value (repeatable)")
        p.add_argument(
            "--from-file", action="append", metavar="[KEY=]PATH", help="a file, or every file of a directory"
        )
        p.add_argument("--from-env-file", action="append", metavar="PATH", help="KEY=VALUE lines (repeatable)")
        p.add_argument("--dry-run", nargs="?", const="client", default=None, metavar="none|client")
        p.add_argument("-o", "--output", choices=("yaml", "json"), help="with --dry-run=client: print the object")

    p = command("explain", "describe a kind's fields from edgekube's model, e.g. pod.spec.containers", "cmd_explain")
    p.add_argument("field", metavar="KIND[.FIELD...]", help="a kind (pods, po, Pod) and a dotted field path")
    p.add_argument("--recursive", action="store_true", help="every field below, indented, without descriptions")

    p = command("completion", "print a shell completion script: bash or zsh", "cmd_completion")
    p.add_argument("shell", choices=("bash", "zsh"), help="source <(ekctl completion bash)")

    p = command("lint", "validate manifests and check their labels and selectors (docs/services.md)", "cmd_lint")
    p.add_argument("paths", nargs="*", metavar="FILE|DIR", help="manifest files, directories, or - for stdin")
    p.add_argument(
        "--cluster",
        action="store_true",
        help="also check against the live cluster's objects and nodes (the files' objects replace theirs)",
    )
    p.add_argument("-o", "--output", choices=("text", "json"), default="text", help="output format (default text)")
    _rollout_commands(command)
    return parser


def _rollout_commands(command: Callable[[str, str, str], argparse.ArgumentParser]) -> None:
    """`ekctl rollout status|history|undo|pause|resume|restart deploy/NAME` and `ekctl set image` (cmd_rollout)."""
    p = command("rollout", "manage a deployment's rollout", "cmd_rollout")
    rollout_sub = p.add_subparsers(dest="rollout_command", required=True, metavar="SUBCOMMAND")
    for name, help_text in (
        ("status", "show the rollout's progress, waiting until it is done"),
        ("history", "list the deployment's revisions"),
        ("undo", "roll back to the previous revision (or --to-revision)"),
        ("pause", "pause the deployment: template changes wait until resume"),
        ("resume", "resume a paused deployment"),
        ("restart", "replace every pod, one rollout, by stamping the template"),
    ):
        sp = rollout_sub.add_parser(name, help=help_text, description=help_text)
        _global_options(sp, suppress=True)
        _resource_args(sp, types="deployments (deploy)")
        if name == "status":
            sp.add_argument(
                "-w", "--watch", default=True, type=lambda t: t.lower() not in ("false", "0", "no"),
                metavar="BOOL", help="wait until the rollout is done (default true; --watch=false: print once)",
            )  # fmt: skip
            sp.add_argument(
                "--wait-timeout", type=_duration, default=0.0, metavar="DURATION",
                help="give up after this long (default 0: wait as long as it takes)",
            )  # fmt: skip
        elif name == "history":
            sp.add_argument("--revision", type=int, default=0, metavar="N", help="show the pod template of revision N")
        elif name == "undo":
            sp.add_argument("--to-revision", type=int, default=0, metavar="N", help="the revision (default: previous)")
    p = command("set", "change a deployment's template: set image deploy/NAME C=IMAGE...", "cmd_rollout:run_set")
    set_sub = p.add_subparsers(dest="set_command", required=True, metavar="image")
    sp = set_sub.add_parser("image", help="set container images", description="set container images (*=IMAGE: all)")
    _global_options(sp, suppress=True)
    sp.add_argument("args", nargs="+", metavar="deploy/NAME CONTAINER=IMAGE")
    sp.set_defaults(trailing="args")
