"""Real Chromium on the admin's live operations page (issue 22): one counter of many is
driven hot through the demo server; the page names it within 5 s with its owner, live
(Server-Sent Events, no reload); a limit set from the page sheds its excess callers with
503 + Retry-After while the other counters keep their latency; the overload shows up;
the object links to its inspection page."""

from __future__ import annotations

import statistics
import threading
import time
from pathlib import Path

import pytest

from tests._servers import http
from tests.inspection._session import create_superuser

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

SHOTS = Path("/tmp/shots")


class Traffic:
    """Threads calling the demo server: ``hot`` as fast as they can, and ten other
    counters a few times a second each, whose latencies are kept per phase."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.stop = threading.Event()
        self.phase = "before"
        self.latencies: dict[str, list[float]] = {"before": [], "during": []}
        self.statuses: dict[str, dict[int, int]] = {"before": {}, "during": {}}
        self.threads = [threading.Thread(target=self._hot) for _ in range(3)]
        self.threads.append(threading.Thread(target=self._others))

    def __enter__(self) -> Traffic:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(20)

    def _hot(self) -> None:
        while not self.stop.is_set():
            answer = http("POST", f"{self.url}/api/demo/counter/hot", {})
            counts = self.statuses[self.phase]
            counts[answer.status] = counts.get(answer.status, 0) + 1

    def _others(self) -> None:
        i = 0
        while not self.stop.is_set():
            started = time.perf_counter()
            answer = http("POST", f"{self.url}/api/demo/counter/other{i % 10}", {})
            assert answer.status == 200, answer
            self.latencies[self.phase].append(time.perf_counter() - started)
            i += 1
            time.sleep(0.02)


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) >= 2 else float("nan")


def test_the_live_page_names_the_hot_object_and_a_limit_set_there_sheds_it(browser, demo_server):
    SHOTS.mkdir(parents=True, exist_ok=True)
    create_superuser(demo_server.var_dir, "config.settings", "root", "pw")
    host = http("GET", f"{demo_server.url}/healthz").body["host"]
    page = browser.new_page(viewport={"width": 1400, "height": 950})
    try:
        page.goto(demo_server.url + "/admin/")
        page.fill("#id_username", "root")
        page.fill("#id_password", "pw")
        page.click("input[type=submit]")
        page.click("a:text('Live operations')")  # reachable from the admin index
        page.locator("#ops-status").filter(has_text="live").wait_for(timeout=10_000)

        with Traffic(demo_server.url) as traffic:
            started = time.monotonic()
            first = page.locator("#ops-hot tbody tr").first
            first.locator("a.ops-object").filter(has_text="hot").wait_for(timeout=5_000)
            named_after = time.monotonic() - started
            assert host.split(":")[1] in first.inner_text()  # its owner
            updates = int(page.evaluate("document.body.dataset.opsUpdates"))
            assert updates >= 1
            time.sleep(2.0)
            page.screenshot(path=str(SHOTS / "operations-hot.png"), full_page=True)

            row = page.locator("#ops-hot tbody tr").first
            row.locator("input[name=turns_per_s]").fill("20")
            row.locator("button:text('set')").click()
            page.locator("#ops-status").filter(has_text="done").wait_for(timeout=10_000)
            traffic.phase = "during"
            page.locator("#ops-overloads li").filter(
                has_text="refused by its limit"
            ).first.wait_for(timeout=10_000)
            time.sleep(3.0)
            page.screenshot(path=str(SHOTS / "operations-limited.png"), full_page=True)
            # Live, not reloaded: the update counter kept growing.
            assert int(page.evaluate("document.body.dataset.opsUpdates")) > updates + 3

        before, during = traffic.latencies["before"], traffic.latencies["during"]
        print(
            f"named after {named_after:.2f} s; hot answers before {traffic.statuses['before']}, "
            f"during {traffic.statuses['during']}; others p99 before {p99(before) * 1000:.1f} ms "
            f"({len(before)} calls), during {p99(during) * 1000:.1f} ms ({len(during)} calls)"
        )
        assert named_after < 5.0
        assert traffic.statuses["during"].get(503, 0) > 0  # the excess was shed
        assert set(traffic.statuses["during"]) <= {200, 503}

        page.locator("#ops-hot a.ops-object").filter(has_text="hot").first.click()
        page.locator(".do-inspect").wait_for(timeout=10_000)
        assert "demo.Counter" in page.content()
    finally:
        page.close()
