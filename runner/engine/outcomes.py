"""What became of a step: a value the engine returns and the session acts on.

Errors are exceptions (each with its exit code); an outcome is not an error. A held lock and a
hand-over to Kratix (an unmet `waitFor`, a `suspend`) stop the run with exit 0, because Kratix
reads workflow-control.yaml only once every container exited 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Outcome(Enum):
    DONE = "done"
    SKIPPED = "skipped"  # its `if:` is false
    RETRY_LATER = "retry-later"  # another run holds its state's lock: Kratix retries later
    HANDED_TO_KRATIX = "handed-to-kratix"  # a waitFor not met yet, or a suspend


@dataclass(frozen=True)
class StepOutcome:
    step: str
    outcome: Outcome
    message: str = ""  # what was asked of Kratix, or why it was skipped

    @property
    def stops_the_run(self) -> bool:
        """No further step runs after it: Kratix takes over."""
        return self.outcome in (Outcome.RETRY_LATER, Outcome.HANDED_TO_KRATIX)
