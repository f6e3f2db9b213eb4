"""kill -9 a process writing the state store at random moments; every acknowledged write must survive."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest

from edgekube.model.errors import NotFoundError
from edgekube.store import JournalStorage, TinyStateStore

from .store_writer import NAMES, pod

WRITER = Path(__file__).with_name("store_writer.py")
KILLS = 36


@dataclass
class Acked:
    """The last acknowledged state of one Pod; step None means acknowledged as deleted."""

    step: int | None
    rv: str = ""
    uid: str = ""


@dataclass
class Intent:
    step: int
    op: str
    name: str


class Ledger:
    """What the writer acknowledged, folded from its output lines."""

    def __init__(self) -> None:
        self.acked: dict[str, Acked] = {name: Acked(None) for name in NAMES}
        self.pending: Intent | None = None
        self.acks = 0
        self.max_rv = 0

    def feed(self, line: bytes) -> None:
        if not line.endswith(b"\n"):
            return  # the writer died while printing: nothing acknowledged here
        message = json.loads(line)
        if "intent" in message:
            self.pending = Intent(message["intent"], message["op"], message["name"])
        elif "ack" in message:
            self.acks += 1
            if message["op"] == "delete":
                self.acked[message["name"]] = Acked(None)
            else:
                self.acked[message["name"]] = Acked(message["ack"], message["rv"], message["uid"])
                self.max_rv = max(self.max_rv, int(message["rv"]))
            self.pending = None

    def check(self, store: TinyStateStore) -> None:
        """Assert the store holds every acknowledged write; settle the one write in flight at the kill."""
        for name in NAMES:
            try:
                stored: dict[str, Any] | None = store.get("Pod", "default", name)
            except NotFoundError:
                stored = None
            acked = self.acked[name]
            if self.pending is not None and self.pending.name == name and not matches(stored, acked):
                # The unacknowledged write in flight may have landed; then it must have landed whole.
                if self.pending.op == "delete":
                    assert stored is None, f"{name}: half-applied delete: {stored}"
                    self.acked[name] = Acked(None)
                else:
                    assert stored is not None, f"{name}: lost while {self.pending.op} was in flight"
                    assert stored["spec"] == pod(name, self.pending.step)["spec"], f"{name}: torn write"
                    metadata = stored["metadata"]
                    self.acked[name] = Acked(self.pending.step, metadata["resourceVersion"], metadata["uid"])
                continue
            assert matches(stored, acked), f"{name}: acknowledged {acked}, store holds {stored}"
        self.pending = None


def matches(stored: dict[str, Any] | None, acked: Acked) -> bool:
    if acked.step is None or stored is None:
        return acked.step is None and stored is None
    metadata = stored["metadata"]
    return bool(
        stored["spec"] == pod(metadata["name"], acked.step)["spec"]
        and (metadata["resourceVersion"], metadata["uid"]) == (acked.rv, acked.uid)
    )


def read_line(stream: IO[bytes], process: subprocess.Popen[bytes]) -> bytes:
    line = stream.readline()
    if not line:
        process.wait()
        assert process.stderr is not None
        pytest.fail(f"the writer died on its own:\n{process.stderr.read().decode()}")
    return line


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_every_acknowledged_write_survives_kill_minus_9(tmp_path: Path) -> None:
    directory = tmp_path / "state"
    rng = random.Random(20261128)
    ledger = Ledger()
    seen: Counter[str] = Counter()

    for round_number in range(1, KILLS + 1):
        # Every other round compacts after each write, so many kills land inside a compaction.
        min_bytes, ratio = ("1", "0") if round_number % 2 else ("4096", "0.5")
        writer = subprocess.Popen(
            [sys.executable, str(WRITER), str(directory), str(round_number), min_bytes, ratio],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert writer.stdout is not None
        assert json.loads(read_line(writer.stdout, writer)) == {"ready": True}
        acks_before = ledger.acks
        target = rng.randint(1, 40)
        while ledger.acks - acks_before < target:
            ledger.feed(read_line(writer.stdout, writer))

        # Reading the ack puts us in lockstep with the writer; a random pause moves the kill to a random
        # point of the writes (and compactions) that follow.
        time.sleep(rng.uniform(0, 0.005))
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        assert writer.returncode == -signal.SIGKILL
        for line in writer.stdout.read().splitlines(keepends=True):
            ledger.feed(line)
        writer.stdout.close()
        assert writer.stderr is not None
        writer.stderr.close()

        with TinyStateStore(directory) as store:
            ledger.check(store)
            recovery = store.storage.recovery if isinstance(store.storage, JournalStorage) else None
            assert recovery is not None
            seen.update(recovery.problems)
            seen["torn tail"] += recovery.torn_tail
            # resourceVersions never go back, whatever the crash took with it.
            probe = store.create({"kind": "Probe", "metadata": {"name": "rv"}})
            assert int(probe["metadata"]["resourceVersion"]) > ledger.max_rv
            store.delete("Probe", "", "rv")

    print(f"\n{KILLS} kills, {ledger.acks} acknowledged writes checked, recoveries: {dict(seen)}")
    assert ledger.acks > KILLS
    assert seen["interrupted compaction"] > 0, "no kill landed inside a compaction"
