"""``ops/load``: the locust load mix against the stack, headless and bounded."""
