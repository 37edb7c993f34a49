"""The device pages in a real Chromium against the demo server: create a device, run
the simulated device in the page, change desired, see the delta arrive and reported
catch up. Screenshots go to /tmp/shots/iot-*.png."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

SHOTS = Path("/tmp/shots")


def test_simulated_device_applies_a_desired_change(browser, demo_server):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(demo_server.url + "/devices/")
        page.fill("#create-id", "pump-7")
        page.fill("#create-desired", '{"color": "GREEN"}')
        page.click("#create-btn")
        page.wait_for_url("**/devices/pump-7/", timeout=10_000)
        page.locator("#version").filter(has_text="version 1").wait_for(timeout=10_000)
        assert "GREEN" in page.inner_text("#delta")  # nobody reported anything yet

        page.click(".iot-switch")  # the simulated device connects and reports GREEN
        page.locator("#conn-badge").filter(has_text="online").wait_for(timeout=10_000)
        page.locator("#delta-state").filter(has_text="in sync").wait_for(timeout=10_000)
        assert "GREEN" in page.inner_text("#reported")

        page.fill("#desired-editor", '{"color": "RED", "target_temp": 24}')
        page.click("#save-desired")
        page.locator("#delta-state").filter(has_text="pending").wait_for(timeout=5_000)
        delta = page.inner_text("#delta")
        assert "RED" in delta and "target_temp" in delta
        assert page.locator("#delta .j-delta").count() == 2  # both fields highlighted
        page.locator("#log").filter(has_text="device received delta").wait_for(timeout=5_000)
        page.screenshot(path=str(SHOTS / "iot-device-delta.png"), full_page=True)

        page.locator("#delta-state").filter(has_text="in sync").wait_for(timeout=10_000)
        reported = page.inner_text("#reported")
        assert "RED" in reported and "24" in reported
        assert page.inner_text("#delta").strip() == "{}"
        page.locator("#chart-empty").wait_for(state="hidden", timeout=10_000)  # telemetry drawn
        page.wait_for_timeout(2_500)  # a few more points on the chart
        page.screenshot(path=str(SHOTS / "iot-device-synced.png"), full_page=True)

        # Leaving the page stops the simulated device: the list's badge turns offline live.
        page.goto(demo_server.url + "/devices/")
        row = page.locator('tr[data-device="pump-7"]')
        row.wait_for(timeout=10_000)
        assert "v4" in row.inner_text()
        row.locator(".badge", has_text="offline").wait_for(timeout=10_000)
        page.screenshot(path=str(SHOTS / "iot-list.png"), full_page=True)
        assert errors == []
    finally:
        page.close()
