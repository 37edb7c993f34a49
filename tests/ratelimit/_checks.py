"""Checks shared by the rate limiter tests: sliding windows and structured fields."""

from __future__ import annotations

import re
from collections.abc import Iterable


def max_in_any_window(times: Iterable[float], period: float) -> tuple[int, float | None]:
    """The largest number of ``times`` inside one window of ``period`` seconds, and where
    it starts. Windows are ``[s, s + period)``: the limiter counts an admission at ``e``
    against a decision at ``t`` while ``t - e < period`` (the same float expression)."""
    ordered = sorted(times)
    best, where, j = 0, None, 0
    for i, start in enumerate(ordered):
        j = max(j, i)
        while j + 1 < len(ordered) and ordered[j + 1] - start < period:
            j += 1
        if j - i + 1 > best:
            best, where = j - i + 1, start
    return best, where


# -- a small RFC 8941 parser: enough for Item and List members with parameters --------

_TOKEN = re.compile(r"[A-Za-z*][A-Za-z0-9:/!#$%&'*+\-.^_`|~]*")
_KEY = re.compile(r"[a-z*][a-z0-9_\-.*]*")
_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")


class StructuredFieldError(ValueError):
    """Raised when a value is not a valid structured field."""


class _Parser:
    def __init__(self, text: str) -> None:
        if any(not (" " <= c <= "~") for c in text):
            raise StructuredFieldError("structured fields are printable ASCII")
        self.s = text.strip(" ")
        self.i = 0

    def peek(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def bare_item(self):
        c = self.peek()
        if c == '"':
            return self.string()
        if c == "-" or c.isdigit():
            return self.number()
        if c == "?":
            self.i += 1
            value = self.peek()
            if value not in ("0", "1"):
                raise StructuredFieldError("bad boolean")
            self.i += 1
            return value == "1"
        match = _TOKEN.match(self.s, self.i)
        if not match:
            raise StructuredFieldError(f"unexpected {c!r} at {self.i}")
        self.i = match.end()
        return match.group()

    def string(self) -> str:
        self.i += 1
        out = []
        while self.i < len(self.s):
            c = self.s[self.i]
            self.i += 1
            if c == "\\":
                if self.peek() not in ('"', "\\"):
                    raise StructuredFieldError("bad escape")
                out.append(self.peek())
                self.i += 1
            elif c == '"':
                return "".join(out)
            else:
                out.append(c)
        raise StructuredFieldError("unterminated string")

    def number(self):
        match = _NUMBER.match(self.s, self.i)
        if not match:
            raise StructuredFieldError("bad number")
        text = match.group()
        self.i = match.end()
        if "." in text:
            whole, frac = text.lstrip("-").split(".")
            if len(whole) > 12 or len(frac) > 3:
                raise StructuredFieldError("decimal out of range")
            return float(text)
        if len(text.lstrip("-")) > 15:
            raise StructuredFieldError("integer out of range")
        return int(text)

    def parameters(self) -> dict:
        params = {}
        while self.peek() == ";":
            self.i += 1
            while self.peek() == " ":
                self.i += 1
            match = _KEY.match(self.s, self.i)
            if not match:
                raise StructuredFieldError("bad parameter key")
            self.i = match.end()
            value = True
            if self.peek() == "=":
                self.i += 1
                value = self.bare_item()
            params[match.group()] = value
        return params

    def item(self) -> tuple:
        return self.bare_item(), self.parameters()

    def end(self) -> None:
        if self.i != len(self.s):
            raise StructuredFieldError(f"trailing characters at {self.i}: {self.s[self.i :]!r}")


def parse_item(text: str) -> tuple:
    """An sf-item: ``(bare item, {param: value})``."""
    parser = _Parser(text)
    result = parser.item()
    parser.end()
    return result


def parse_list(text: str) -> list[tuple]:
    """An sf-list of items (no inner lists)."""
    parser = _Parser(text)
    members = []
    while parser.i < len(parser.s):
        members.append(parser.item())
        while parser.peek() == " ":
            parser.i += 1
        if parser.i == len(parser.s):
            break
        if parser.peek() != ",":
            raise StructuredFieldError("expected ','")
        parser.i += 1
        while parser.peek() == " ":
            parser.i += 1
        if parser.i == len(parser.s):
            raise StructuredFieldError("trailing comma")
    return members
