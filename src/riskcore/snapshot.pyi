from typing import Any

from riskcore.clock import Clock
from riskcore.engine import RiskEngine

STATE_VERSION: int

def engine_state(self: RiskEngine) -> dict[str, Any]: ...
def restore_engine(cls: type[RiskEngine], state: dict[str, Any], clock: Clock | None = ...) -> RiskEngine: ...
