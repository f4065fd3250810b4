"""Pure escalation policy: which steps of a clock are due, who hears of them, what fired.

No I/O and no wall clock: instants are passed in. The scheduler and the simulation
both decide with these functions.
"""

from engine.escalation.fired import FiredStep
from engine.escalation.policy import (
    StepDue,
    due_in_order,
    due_steps,
    next_due,
    reinstated,
    superseded,
)
from engine.escalation.recipients import Recipients, recipients

__all__ = [
    "FiredStep",
    "Recipients",
    "StepDue",
    "due_in_order",
    "due_steps",
    "next_due",
    "recipients",
    "reinstated",
    "superseded",
]
