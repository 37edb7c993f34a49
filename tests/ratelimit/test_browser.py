"""The playground in a real Chromium: a burst shows admitted and refused requests."""

from __future__ import annotations

from pathlib import Path

SHOTS = Path("/tmp/shots")

# Counts canvas pixels close to the chart's admitted (green) and refused (red) bar colours.
_PIXELS = """() => {
  const c = document.getElementById("rl-chart");
  const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  let green = 0, red = 0;
  for (let i = 0; i < d.length; i += 4) {
    const [r, g, b] = [d[i], d[i + 1], d[i + 2]];
    if (Math.abs(r - 0x2f) < 12 && Math.abs(g - 0xa3) < 12 && Math.abs(b - 0x6b) < 12) green++;
    if (Math.abs(r - 0xe0) < 12 && Math.abs(g - 0x6a) < 12 && Math.abs(b - 0x70) < 12) red++;
  }
  return {green, red};
}"""


def test_playground_burst_shows_admitted_and_refused(browser, rl_server):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1360, "height": 980})
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(rl_server.url + "/ratelimit/")
        page.select_option("#rl-policy", "t5")  # 5 per 30 s
        page.fill("#rl-burst", "12")
        page.locator("#rl-last-status").filter(has_text="GET").wait_for(timeout=10_000)
        page.click("#rl-fire")
        page.locator("#rl-admitted").filter(has_text="5").wait_for(timeout=10_000)
        page.locator("#rl-refused").filter(has_text="7").wait_for(timeout=10_000)
        assert page.inner_text("#rl-sent") == "12"
        assert page.inner_text("#rl-errors") == "0"
        assert page.inner_text("#rl-remaining") == "0"
        headers = page.inner_text("#rl-headers")
        assert "RateLimit-Policy" in headers and '"t5";q=5;w=30' in headers
        assert "Retry-After" in headers  # the last answer of a burst past the limit is a 429
        page.wait_for_timeout(400)  # one redraw of the chart
        pixels = page.evaluate(_PIXELS)
        assert pixels["green"] > 50 and pixels["red"] > 50, pixels
        assert page.locator("#rl-log li.ok:not(.peek)").count() == 5
        assert page.locator("#rl-log li.bad:not(.peek)").count() == 7
        page.screenshot(path=str(SHOTS / "ratelimit-burst.png"), full_page=True)

        # Steady traffic on the short policy: the trailing-window line rises and refusals
        # come and go; the page keeps counting.
        page.select_option("#rl-policy", "t2")
        page.check("#rl-steady")
        page.wait_for_timeout(3000)
        page.uncheck("#rl-steady")
        assert int(page.inner_text("#rl-admitted")) >= 2
        assert int(page.inner_text("#rl-refused")) >= 1
        page.screenshot(path=str(SHOTS / "ratelimit-steady.png"), full_page=True)

        narrow = browser.new_page(viewport={"width": 760, "height": 1100})
        narrow.goto(rl_server.url + "/ratelimit/")
        narrow.click("#rl-fire")
        narrow.locator("#rl-admitted").filter(has_text="10").wait_for(timeout=10_000)
        narrow.screenshot(path=str(SHOTS / "ratelimit-narrow.png"), full_page=True)
        narrow.close()
        assert not errors, errors
    finally:
        page.close()
