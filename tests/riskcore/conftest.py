"""Fixtures of the engine's unit tests: the standard world (world.py) on a manual clock."""
import pytest

from riskcore import ManualClock
from tests.riskcore.world import T0, build


@pytest.fixture
def clock():
    return ManualClock(T0)


@pytest.fixture
def engine(clock):
    return build(clock)


@pytest.fixture
def dup_engine(clock):
    """The standard world with a one-second duplicate-order window."""
    return build(clock, duplicate_window=1.0)
