"""What every part of the demo (evalsite.demo) shares: its options (where it writes, sizes, seed,
address), its error type, and the repository root it runs commands from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class DemoOptions:
    home: Path
    tracks: int
    seconds: float
    seed: int
    train_steps: int
    simulate: int
    rates: dict[str, float]
    host: str
    port: int
    serve: bool

    @property
    def state_dir(self) -> Path:
        return self.home / "demo"

    @property
    def data_dir(self) -> Path:
        return self.home / "data" / "demo"

    @property
    def run_dir(self) -> Path:
        return self.home / "runs" / "demo"

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"


class DemoError(RuntimeError):
    """A stage could not finish; the message says what to do."""
