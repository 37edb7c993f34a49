"""Real Chromium: a staff user logs into the admin, opens a chat room's object and sees its
``messages`` table; the demo home shows the apps with live figures."""

from __future__ import annotations

from pathlib import Path

from tests._servers import http
from tests.inspection._session import create_superuser

SHOTS = Path("/tmp/shots")


def test_admin_shows_a_chat_rooms_messages_table(browser, demo_server):
    SHOTS.mkdir(parents=True, exist_ok=True)
    create_superuser(demo_server.var_dir, "config.settings", "root", "pw")
    for text in ("hello <b>world</b>", "second message"):
        sent = http(
            "POST",
            f"{demo_server.url}/api/chat/rooms/lobby/messages",
            {"name": "ann", "text": text},
        )
        assert sent.status == 201, sent

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        page.goto(demo_server.url + "/")
        page.locator("#card-chat .fig-active").filter(has_text="1").wait_for(timeout=10_000)
        page.screenshot(path=str(SHOTS / "inspect-home.png"), full_page=True)

        page.goto(demo_server.url + "/admin/durable_core/objectrecord/?namespace=chat.Room")
        assert "/admin/login/" in page.url  # anonymous: the login page
        page.fill("#id_username", "root")
        page.fill("#id_password", "pw")
        page.click("input[type=submit]")
        page.locator("#result_list").wait_for(timeout=10_000)
        page.screenshot(path=str(SHOTS / "inspect-list.png"), full_page=True)

        page.click("#result_list a:text('lobby')")
        table = page.locator('table[data-table="messages"]')
        table.wait_for(timeout=10_000)
        headers = table.locator("thead th").all_text_contents()  # as written, not as styled
        assert [h.strip() for h in headers][:3] == ["id 🔑", "name", "text"]
        rows = table.locator("tbody tr")
        assert rows.count() == 2
        assert "hello <b>world</b>" in rows.nth(0).inner_text()  # shown as text, not markup
        assert table.locator("b").count() == 0
        assert "read through the owner, as a turn" in page.content()
        page.screenshot(path=str(SHOTS / "inspect-object.png"), full_page=True)

        page.click("#do-delete")
        page.locator("#do-confirm-delete").wait_for(timeout=10_000)
        page.screenshot(path=str(SHOTS / "inspect-delete-confirm.png"))
    finally:
        page.close()
