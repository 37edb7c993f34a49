"""The demo home page in a real Chromium: it renders and its counter works."""

from __future__ import annotations


def test_home_counter_increments(browser, demo_server):
    page = browser.new_page()
    try:
        page.goto(demo_server.url + "/")
        count = page.locator("#count")
        count.filter(has_text="0").wait_for(timeout=10_000)
        page.click("#inc")
        count.filter(has_text="1").wait_for(timeout=10_000)
        assert page.locator("header.topbar").is_visible()
    finally:
        page.close()
