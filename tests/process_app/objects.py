"""Objects the process tests drive over HTTP.

``process_app.Alarmed`` has an alarm the tests schedule and watch; ``process_app.SlowCounter``
can wait inside its turn before writing, so a test can freeze its host mid-turn.
"""

from __future__ import annotations

import asyncio
import json
import os
import time

from django.conf import settings

from durable_core.objects import AlarmInfo, DurableObject


def attempts_log_path():
    """Every ``on_alarm`` run, failed ones included, appended outside object storage."""
    return settings.VAR_DIR / "alarm_attempts.jsonl"


class Alarmed(DurableObject):
    """Schedules one alarm; each committed firing is appended to ``firings`` in storage.

    ``fail_times`` = n makes the runs with ``retry_count < n`` raise. It is compared with
    the retry count rather than decremented, because a raising run is rolled back, a
    decrement with it. Each run, committed or not, is also appended to a log file beside
    the Django database (a side effect outside storage), so a rolled-back run is visible.
    Each run records the pid and the fencing token of the activation that ran it.
    """

    namespace = "process_app.Alarmed"

    async def schedule(self, delay: float) -> float:
        """Set the alarm ``delay`` seconds from now; returns its epoch time."""
        when = time.time() + delay
        self.storage.set_alarm(when)
        return when

    async def set_fail_times(self, times: int) -> None:
        """Make the first ``times`` runs of ``on_alarm`` raise."""
        self.storage.put("fail_times", times)

    async def evict(self) -> None:
        """Leave memory after this turn (``ctx.abort``): the lease is released, the alarm
        stays in storage and in the index for some host's scheduler to fire."""
        self.ctx.abort("evicted by the test")

    async def firings(self) -> list[dict]:
        """The committed firings, oldest first."""
        return self.storage.get("firings", [])

    async def on_alarm(self, info: AlarmInfo) -> None:
        failing = info.retry_count < self.storage.get("fail_times", 0)
        record = {
            "name": self.ctx.id.name,
            "time": time.time(),
            "scheduled": info.scheduled_time,
            "retry_count": info.retry_count,
            "pid": os.getpid(),
            "token": self.ctx.fencing_token,
            "ok": not failing,
        }
        with open(attempts_log_path(), "a") as log:
            log.write(json.dumps(record) + "\n")
        if failing:
            raise RuntimeError(f"failing on purpose (retry_count {info.retry_count})")
        self.storage.put("firings", [*self.storage.get("firings", []), record])


class SlowCounter(DurableObject):
    """A counter whose increment may sleep inside the turn (gate closed) before writing."""

    namespace = "process_app.SlowCounter"

    async def increment(self, delay: float = 0.0) -> int:
        """Wait ``delay`` seconds, then add one and return the new value.

        A waiting turn first appends a line to ``slow_turns.jsonl`` beside the Django
        database, so a test knows the turn is running before it freezes the host.
        """
        if delay:
            record = {"name": self.ctx.id.name, "pid": os.getpid(), "time": time.time()}
            with open(settings.VAR_DIR / "slow_turns.jsonl", "a") as log:
                log.write(json.dumps(record) + "\n")
            await asyncio.sleep(delay)
        value = self.storage.get("n", 0) + 1
        self.storage.put("n", value)
        return value

    async def value(self) -> int:
        """The current value."""
        return self.storage.get("n", 0)


class Room(DurableObject):
    """A WebSocket echo-and-broadcast object for the WebSocket tests."""

    namespace = "process_app.Room"

    async def on_websocket_connect(self, ws, request) -> None:
        from urllib.parse import parse_qs

        query = parse_qs(request.query_string)
        if "reject" in query:
            ws.close(4401)
            return
        name = query.get("name", ["anon"])[0]
        self.ctx.accept_websocket(ws, tags=[name, "all"])
        joined = self.storage.get("joined", 0) + 1
        self.storage.put("joined", joined)
        ws.serialize_attachment({"name": name, "joined": joined})

    async def on_websocket_message(self, ws, message) -> None:
        import json

        if isinstance(message, bytes):
            ws.send(message[::-1])
            return
        msg = json.loads(message)
        kind = msg.get("type")
        if kind == "broadcast":
            self._broadcast(msg.get("text", ""), ws.deserialize_attachment()["name"])
        elif kind == "echo":
            ws.send(json.dumps({"type": "echo", "text": msg.get("text")}))
        elif kind == "whoami":
            ws.send(
                json.dumps(
                    {
                        "type": "whoami",
                        "attachment": ws.deserialize_attachment(),
                        "tags": self.ctx.get_tags(ws),
                        "token": self.ctx.fencing_token,
                    }
                )
            )
        elif kind == "count":
            ws.send(json.dumps({"type": "count", "n": len(self.ctx.get_websockets())}))
        elif kind == "close":
            ws.close(4000, "bye")
        elif kind == "auto":
            self.ctx.set_websocket_auto_response("ping", "pong")
        elif kind == "fail":
            ws.send("never sent")
            raise RuntimeError("turn fails: its frame must not leave")

    def _broadcast(self, text: str, sender: str) -> int:
        import json

        seq = self.storage.get("seq", 0) + 1
        self.storage.put("seq", seq)
        frame = json.dumps({"type": "broadcast", "seq": seq, "text": text, "from": sender})
        for socket in self.ctx.get_websockets():
            socket.send(frame)
        return seq

    async def on_websocket_close(self, ws, code, reason, was_clean) -> None:
        closed = self.storage.get("closed", [])
        closed.append([ws.deserialize_attachment()["name"], code, was_clean])
        self.storage.put("closed", closed)

    async def broadcast(self, text: str) -> int:
        return self._broadcast(text, "http")

    async def info(self) -> dict:
        return {
            "sockets": len(self.ctx.get_websockets()),
            "closed": self.storage.get("closed", []),
            "seq": self.storage.get("seq", 0),
            "token": self.ctx.fencing_token,
        }
