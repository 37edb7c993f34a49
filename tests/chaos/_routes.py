"""Concrete paths for the WebSocket routes of config/routing.py."""

from __future__ import annotations

import re


def sample_path(pattern: object, value: str) -> str:
    """A path matching ``pattern`` (a Django route or regex) with ``value`` for each
    parameter, with a leading slash."""
    text = str(pattern)
    text = re.sub(r"\(\?P<\w+>[^)]*\)", value, text)  # regex groups first: they hold <name>
    text = re.sub(r"<[^>]+>", value, text)
    return "/" + text.strip("^$").replace("/?", "/").lstrip("/")
