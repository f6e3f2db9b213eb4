"""Benchmark: the agent's extra RSS for gRPC probes — edgekube's h2 client against grpcio's stub, 20 checks each.

Run: .venv/bin/python benchmarks/grpc_probe_rss.py [--checks 20]

Starts grpcio's health server in a child process, then, in a fresh interpreter per client that has imported the
agent (edgekube.agent.app and wiring), runs `--checks` Health/Check calls and prints the VmRSS grown since the
imports: `h2` goes through probe_checks.check as a probe would (h2 is imported by the first gRPC probe), `grpcio`
through a grpcio channel and the grpc_health stub (what the agent would hold had it used grpcio).
"""

from __future__ import annotations

import argparse
import subprocess
import sys

SERVER = """
import time
from concurrent import futures
import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
servicer = health.HealthServicer()
servicer.set("", health_pb2.HealthCheckResponse.SERVING)
health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
print(server.add_insecure_port("127.0.0.1:0"), flush=True)
server.start()
time.sleep(3600)
"""

CLIENT = """
import sys
import edgekube.agent.app, edgekube.agent.wiring

def rss():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS"))

how, port, checks = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
before = rss()
if how == "h2":
    from edgekube.agent.probe_checks import ProbeTarget, check
    from edgekube.agent.probe_timing import ProbeKind
    from edgekube.agent.runtime.fake import FakeRuntime
    from edgekube.model.pod import Container
    container = Container.model_validate({"name": "a", "image": "b", "livenessProbe": {"grpc": {"port": port}}})
    target = ProbeTarget("u", "p", container, ProbeKind.LIVENESS, "i", 0.0, "127.0.0.1")
    for _ in range(checks):
        assert check(target, FakeRuntime()).ok
else:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    for _ in range(checks):
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2.0)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
print(before, rss())
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=20)
    args = parser.parse_args()
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = server.stdout.readline().strip()
        for how in ("h2", "grpcio"):
            out = subprocess.run(
                [sys.executable, "-c", CLIENT, how, port, str(args.checks)],
                capture_output=True, text=True, check=True,
            ).stdout.split()  # fmt: skip
            before, after = int(out[0]), int(out[1])
            print(f"{how:7s} agent imported: {before / 1024:6.1f} MB  after {args.checks} checks: "
                  f"{after / 1024:6.1f} MB  cost: {(after - before) / 1024:5.1f} MB")  # fmt: skip
    finally:
        server.kill()
        server.wait()


if __name__ == "__main__":
    main()
