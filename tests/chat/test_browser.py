"""The chat UI in a real Chromium (playwright, Debian chromium) against a real server.

Two pages in one room see each other's messages, presence and typing; a third page in
another room sees none of it. Screenshots go to /tmp/shots/chat-*.png.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

SHOTS = Path("/tmp/shots")
WAIT = 15_000  # ms, for anything that crosses the server


# Keeps every WebSocket the page makes in window.__sockets, so the test can drop the
# connection the way a network failure would (the page's own reconnect logic runs).
TRACK_SOCKETS = """
window.__sockets = [];
window.WebSocket = class extends window.WebSocket {
  constructor(...args) { super(...args); window.__sockets.push(this); }
};
"""


def open_room(browser, server, room: str, name: str):
    """A page of its own (own browser context: own localStorage) joined as ``name``."""
    page = browser.new_page(viewport={"width": 1180, "height": 760})
    page.add_init_script(TRACK_SOCKETS)
    page.goto(f"{server.url}/chat/{room}/")
    page.locator("#name-input").fill(name)
    page.locator("#name-input").press("Enter")
    page.locator("#conn[data-state=online]").wait_for(timeout=WAIT)
    return page


def roster(page) -> list[str]:
    return page.locator("#roster li .who").all_inner_texts()


def bodies(page) -> list[str]:
    return page.locator("#message-list .msg .body").all_inner_texts()


def test_two_pages_in_a_room_chat_see_presence_and_typing_a_third_room_sees_nothing(
    browser, demo_server
):
    SHOTS.mkdir(parents=True, exist_ok=True)
    lobby = browser.new_page(viewport={"width": 1180, "height": 760})
    ada = grace = other = None
    try:
        ada = open_room(browser, demo_server, "design-review", "Ada")
        grace = open_room(browser, demo_server, "design-review", "Grace")
        other = open_room(browser, demo_server, "elsewhere", "Linus")

        # Presence: each sees the other in the roster.
        ada.locator("#roster li[data-name=Grace]").wait_for(timeout=WAIT)
        assert sorted(roster(grace)) == ["Ada", "Grace"]
        ada.locator(".note", has_text="Grace joined").wait_for(timeout=WAIT)

        # Typing: Ada types, Grace is told; Ada sends with Enter, Grace gets the message.
        ada.locator("#text").press_sequentially("Morning! The new chat is live", delay=15)
        grace.locator("#typing", has_text="Ada is typing").wait_for(timeout=WAIT)
        ada.locator("#text").press("Enter")
        grace.locator(".msg .body", has_text="Morning! The new chat is live").wait_for(timeout=WAIT)
        ada.locator(".msg[data-id]:not(.pending) .body", has_text="new chat is live").wait_for(
            timeout=WAIT
        )
        grace.locator("#text").fill("Nice. History, presence and typing all work?")
        grace.locator("#send").click()
        grace.locator("#text").fill("And a reconnect resumes where it left off.")
        grace.locator("#text").press("Enter")
        ada.locator(".msg .body", has_text="resumes where it left off").wait_for(timeout=WAIT)
        ada.locator("#text").press_sequentially("Yes, and", delay=15)
        grace.locator("#typing", has_text="Ada is typing").wait_for(timeout=WAIT)
        expected = [
            "Morning! The new chat is live",
            "Nice. History, presence and typing all work?",
            "And a reconnect resumes where it left off.",
        ]
        assert bodies(ada) == bodies(grace) == expected

        # Grace's connection drops; Ada writes meanwhile. Grace's page reconnects with
        # `since` and shows exactly what she missed, once each.
        grace.evaluate("window.__sockets.at(-1).close()")
        grace.locator("#conn[data-state=reconnecting]").wait_for(timeout=WAIT)
        for text in ("While you were away: one", "While you were away: two"):
            ada.locator("#text").fill(text)
            ada.locator("#text").press("Enter")
        ada.locator(".msg[data-id]:not(.pending) .body", has_text="away: two").wait_for(
            timeout=WAIT
        )
        grace.locator(".msg .body", has_text="away: two").wait_for(timeout=WAIT)
        grace.locator("#conn[data-state=online]").wait_for(timeout=WAIT)
        assert grace.evaluate("window.__sockets.length") == 2
        expected += ["While you were away: one", "While you were away: two"]
        assert bodies(ada) == bodies(grace) == expected
        ada.locator("#text").press_sequentially(" all good", delay=15)
        grace.locator("#typing", has_text="Ada is typing").wait_for(timeout=WAIT)
        ada.screenshot(path=str(SHOTS / "chat-room-ada.png"))
        grace.screenshot(path=str(SHOTS / "chat-room-grace.png"))

        # The other room saw nothing: no messages, no one else online, no typing.
        other.locator("#text").fill("anyone here?")
        other.locator("#text").press("Enter")
        other.locator(".msg[data-id] .body", has_text="anyone here?").wait_for(timeout=WAIT)
        assert bodies(other) == ["anyone here?"]
        assert roster(other) == ["Linus"]
        assert other.locator("#typing").inner_text() == ""
        assert other.locator(".note").count() == 0
        assert "anyone here?" not in bodies(ada) + bodies(grace)
        other.screenshot(path=str(SHOTS / "chat-other-room.png"))

        # Leaving: Grace closes her page, Ada sees her go.
        grace.close()
        grace = None
        expect(ada.locator(".note", has_text="Grace left")).to_have_count(2, timeout=WAIT)
        expect(ada.locator("#roster li .who")).to_have_text(["Ada"], timeout=WAIT)

        lobby.goto(f"{demo_server.url}/chat/")
        lobby.locator(".room-list a", has_text="design-review").wait_for(timeout=WAIT)
        lobby.screenshot(path=str(SHOTS / "chat-lobby.png"))
        # A private room from the lobby: a 64-hex address, the name remembered.
        lobby.locator("#join-name").fill("Ada")
        lobby.locator("#create-private").click()
        lobby.wait_for_url("**/chat/*/", timeout=WAIT)
        assert len(lobby.url.rstrip("/").rsplit("/", 1)[1]) == 64
        lobby.locator("#conn[data-state=online]").wait_for(timeout=WAIT)
        lobby.locator("#history-start").wait_for(timeout=WAIT)
        lobby.screenshot(path=str(SHOTS / "chat-private-room.png"))

        # Errors are shown, not swallowed: past the demo's 30 sends per 10 s from this
        # IP, a message is marked as not sent, with a notice and a retry button.
        for i in range(40):
            other.locator("#text").fill(f"flood {i}")
            other.locator("#text").press("Enter")
            if other.locator(".msg.failed").count():
                break
        other.locator(".msg.failed .status", has_text="too many messages").first.wait_for(
            timeout=WAIT
        )
        other.locator(".toast", has_text="too fast").first.wait_for(timeout=WAIT)
        other.wait_for_timeout(300)  # the notice's fade-in
        other.screenshot(path=str(SHOTS / "chat-rate-limited.png"))
    finally:
        for page in (lobby, ada, grace, other):
            if page is not None:
                page.close()
