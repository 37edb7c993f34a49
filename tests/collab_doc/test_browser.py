"""Two real Chromium pages type into the same document at the same time: they end with
identical text (also the server's), and each shows the other's named cursor."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

SHOTS = Path("/tmp/shots")


def editor_text(page) -> str:
    return page.evaluate("() => window.collabEditor.view.state.doc.toString()")


def open_editor(browser, server, name: str, user: str):
    context = browser.new_context(viewport={"width": 1200, "height": 760})
    page = context.new_page()
    page.goto(f"{server.url}/docs/{name}/?name={user}")
    page.wait_for_selector("[data-collab-editor][data-connection=synced]", timeout=15_000)
    page.click(".cm-content")
    return page


def test_two_pages_type_at_once_converge_and_see_each_others_cursor(browser, demo_server):
    SHOTS.mkdir(parents=True, exist_ok=True)
    name = "browser-pair"
    ann = open_editor(browser, demo_server, name, "Ann")
    bob = open_editor(browser, demo_server, name, "Bob")
    words_ann = "Ann writes the opening line. "
    words_bob = "bob adds a second thought. "
    # Keystrokes alternate between the pages without waiting for each other's edits to
    # arrive: both type at the same time, into the same spot of an empty document.
    for a, b in zip(words_ann, words_bob, strict=False):
        ann.keyboard.type(a)
        bob.keyboard.type(b)
    ann.keyboard.type(words_ann[len(words_bob) :])
    bob.keyboard.type(words_bob[len(words_ann) :])

    def settled() -> bool:
        text = editor_text(ann)
        return text == editor_text(bob) and len(text) == len(words_ann) + len(words_bob)

    ann.wait_for_function(
        "n => window.collabEditor.view.state.doc.length === n",
        arg=len(words_ann) + len(words_bob),
        timeout=15_000,
    )
    bob.wait_for_function(
        "n => window.collabEditor.view.state.doc.length === n",
        arg=len(words_ann) + len(words_bob),
        timeout=15_000,
    )
    assert settled()
    text = editor_text(ann)
    assert sorted(text) == sorted(words_ann + words_bob)  # every keystroke of both, once
    served = demo_server.get(f"/api/documents/{name}").body
    assert served["text"] == text

    # Each page shows the other's caret, labelled with the other's name.
    ann.wait_for_selector(".cm-ySelectionInfo:has-text('Bob')", timeout=10_000)
    bob.wait_for_selector(".cm-ySelectionInfo:has-text('Ann')", timeout=10_000)
    assert ann.locator(".cm-ySelectionInfo", has_text="Ann").count() == 0  # not our own
    assert ann.locator(".person").count() == 2 and bob.locator(".person").count() == 2
    assert ann.locator("[data-status]").inner_text() == "Live"
    ann.screenshot(path=str(SHOTS / "collab-editor-ann.png"))
    bob.screenshot(path=str(SHOTS / "collab-editor-bob.png"))

    # The document list shows it.
    listing = ann.context.new_page()
    listing.goto(f"{demo_server.url}/docs/")
    assert listing.locator("#doc-list a", has_text=name).count() == 1
    listing.screenshot(path=str(SHOTS / "collab-documents.png"))
    listing.locator("#doc-list a", has_text=name).click()
    listing.wait_for_selector("[data-collab-editor][data-connection=synced]", timeout=15_000)
    assert editor_text(listing) == text
