"""The local stack behind ``ops/dev`` and the test suite; see ``stack.py`` for the orchestration."""

from devtools.stack.config import APP_ROLE, DB_NAME, PROJECT_DIR, StackConfig, StackError, free_port, port_open
from devtools.stack.stack import Stack

__all__ = ["APP_ROLE", "DB_NAME", "PROJECT_DIR", "Stack", "StackConfig", "StackError", "free_port", "port_open"]
