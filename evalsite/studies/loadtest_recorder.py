"""What a client process of the load benchmark records, and how it reaches the coordinator:
per request kind the latencies and failed attempts, the answers and bare writes acknowledged,
and named events (`Recorder`). Separate from the simulated participant (`loadtest_client`)
because the coordinator (`loadtest`), the in-process and cost runs and the study's checks read
and merge these figures without sending any request.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field


@dataclass
class Recorder:
    """Latencies per request kind, errors, and the answers acknowledged, for one process."""

    latencies: dict = field(default_factory=lambda: defaultdict(list))  # kind -> [(end, s)]
    errors: dict = field(default_factory=lambda: defaultdict(int))  # kind -> count
    acked: list = field(default_factory=list)  # (participant token, trial index)
    writes: list = field(default_factory=list)  # (writer, index) of bare writes that returned
    events: dict = field(default_factory=lambda: defaultdict(int))  # name -> count
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, seconds: float) -> None:
        # (monotonic end time: the same clock in every process on Linux; latency in seconds);
        # list.append is atomic under the GIL
        self.latencies[kind].append((time.monotonic(), seconds))

    def error(self, kind: str) -> None:
        with self.lock:
            self.errors[kind] += 1

    def event(self, name: str) -> None:
        with self.lock:
            self.events[name] += 1

    def merge(self, other: dict) -> None:
        """Add the figures another process sent (`as_dict`)."""
        for kind, rows in other["latencies"].items():
            self.latencies[kind].extend(rows)
        for kind, n in other["errors"].items():
            self.errors[kind] += n
        for name, n in other["events"].items():
            self.events[name] += n
        self.acked.extend(other["acked"])
        self.writes.extend(other["writes"])

    def as_dict(self) -> dict:
        return {"latencies": dict(self.latencies), "errors": dict(self.errors),
                "events": dict(self.events), "acked": self.acked,
                "writes": self.writes}  # fmt: skip
