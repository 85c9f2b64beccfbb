"""Developer tooling: the local stack behind ``ops/dev`` and the test suite.

Lives outside ``app/`` so that none of it reaches the service image or the installed
distribution; scripts and pytest put ``ops/`` on ``sys.path`` to import it.
"""
