"""``ops/drill``: the fault matrix. Each fault, one at a time, under the standard mixed load
through nginx; one row per fault says what users saw and what the fault left behind.

    from devtools.drill import run_drill
    rows = run_drill(stack, ["relay-kill", "instance-kill"], scale=0.3, workers=4)
"""

from devtools.drill.faults import FAULTS
from devtools.drill.report import Row
from devtools.drill.runner import drill, run_drill
from devtools.drill.target import StackDownError

__all__ = ["FAULTS", "Row", "StackDownError", "drill", "run_drill"]
