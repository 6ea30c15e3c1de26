"""Day files made once per session by the simulator (seeded), shared read-only by the ingest tests."""
from __future__ import annotations

import pathlib

import pytest

from riskcore_services.ingest.simulate import SimulationConfig, generate

SMALL = SimulationConfig(messages=30_000, symbols=25, seed=11)


@pytest.fixture(scope="session")
def small_day() -> bytes:
    """A 30,000-message, 25-symbol day, as bytes of the day-file framing."""
    return b"".join(generate(SMALL))


@pytest.fixture(scope="session")
def small_day_file(tmp_path_factory: pytest.TempPathFactory, small_day: bytes) -> pathlib.Path:
    path = tmp_path_factory.mktemp("day") / "small.itch"
    path.write_bytes(small_day)
    return path
