"""A test-only app served by server subprocesses: an object with an alarm, over HTTP."""
