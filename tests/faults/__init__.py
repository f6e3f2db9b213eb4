"""Fault tests: a multi-node fleet on real parts is hurt (kill -9, SIGSTOP, network cut, restarts) and must heal."""
