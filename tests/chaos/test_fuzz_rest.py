"""Hostile input over REST: every route of /api/openapi.json, fuzzed with schemathesis.

The routes are read from the running server's schema at test time, so routes added later
are fuzzed without editing this file. Each operation gets schema-valid (positive) and
schema-violating (negative) cases, anonymously and as a logged-in staff user (with the
CSRF token, so staff-only routes are fuzzed past their login check). Asserted: no 5xx,
every answer under /api/ is JSON, and the server logged no exception while it ran.
"""

from __future__ import annotations

import os
import time
from collections import Counter

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from ._staff import make_session

pytestmark = [pytest.mark.slow, pytest.mark.timeout(170)]

# Cases per operation, generation mode and identity; bounded so the test stays < 60 s.
EXAMPLES = int(os.environ.get("FUZZ_REST_EXAMPLES", "0")) or None
BUDGET_S = float(os.environ.get("FUZZ_REST_SECONDS", "45"))
LOG_ALARMS = ("Traceback (most recent call last)", "Exception inside application", " ERROR ")


def test_every_rest_route_answers_hostile_input_without_5xx(demo_server):
    """Generated requests to every operation of the OpenAPI schema: never a 5xx, always a
    JSON body, and nothing in the server log that says an exception escaped."""
    schema = schemathesis.openapi.from_url(f"{demo_server.url}/api/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert operations, "the schema lists no operations"
    staff = make_session(demo_server.var_dir, "fuzz-staff", staff=True)
    identities = {
        "anonymous": ({}, {}),
        "staff": (staff, {"X-CSRFToken": staff["csrftoken"], "Referer": demo_server.url + "/"}),
    }
    per_run = EXAMPLES or max(3, min(20, 600 // (len(operations) * 4)))
    log_start = len(demo_server.text())
    statuses: dict[str, Counter] = {}
    failures: list[str] = []
    unsatisfiable: list[str] = []
    deadline = time.monotonic() + BUDGET_S
    session = requests.Session()
    session.trust_env = False  # loopback only, whatever proxy the environment names

    for operation in operations:
        seen = statuses.setdefault(operation.label, Counter())
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            for who, (cookies, headers) in identities.items():
                if time.monotonic() > deadline:
                    break

                @settings(
                    max_examples=per_run,
                    deadline=None,
                    database=None,
                    derandomize=True,
                    suppress_health_check=list(HealthCheck),
                )
                @given(case=operation.as_strategy(generation_mode=mode))
                def run(case, cookies=cookies, headers=headers, who=who, seen=seen):
                    response = case.call(
                        base_url=demo_server.url,
                        session=session,
                        cookies=cookies,
                        headers=headers,
                        timeout=15,
                    )
                    seen[response.status_code] += 1
                    where = f"{who} {case.method} {response.request.url}"
                    if response.status_code >= 500:
                        failures.append(f"{response.status_code} {where}: {response.text[:300]}")
                    elif "json" not in response.headers.get("Content-Type", ""):
                        failures.append(f"non-JSON {response.status_code} {where}")

                try:
                    run()
                except Unsatisfiable:
                    unsatisfiable.append(f"{operation.label} {mode.value} {who}")

    log = demo_server.text()[log_start:]
    cases = sum(sum(c.values()) for c in statuses.values())
    print(f"\nREST fuzzing: {len(operations)} operations, {cases} cases")
    for label, seen in sorted(statuses.items()):
        print(f"  {label}: {dict(sorted(seen.items()))}")
    if unsatisfiable:
        print(f"  no cases could be generated for: {unsatisfiable}")
    assert not failures, "\n".join(failures[:30])
    alarms = [line for line in log.splitlines() if any(a in line for a in LOG_ALARMS)]
    assert not alarms, "the server logged exceptions:\n" + log[-8000:]
    assert cases >= len(operations), statuses
