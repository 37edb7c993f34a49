"""Client load for the cluster tests: threads incrementing demo counters over HTTP.

Each increment carries its own ``Idempotency-Key`` (the call id), and a failed or
timed-out attempt is sent again with the same key, to another live server when there is
one, until it is acknowledged. So every key the clients made is either acknowledged or
still pending, and a counter must end equal to its number of keys: an increment applied
twice or lost shows as a wrong value. Talks to 127.0.0.1 only (``tests._servers``).
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from tests._servers import ServerProcess

COUNTER_PATH = "/api/demo/counter/{}"


@dataclass(frozen=True)
class Ack:
    """One acknowledged increment."""

    name: str
    key: str
    value: int
    sent: float  # time.monotonic() when the acknowledged attempt was sent
    acked: float  # time.monotonic() when its reply arrived
    server: int  # index of the server that answered
    attempts: int  # attempts this key needed


class Load:
    """Clients that increment counters until every increment is acknowledged."""

    def __init__(
        self,
        servers: list[ServerProcess],
        names: list[str],
        *,
        attempt_timeout: float = 15.0,
        path: str = COUNTER_PATH,
    ) -> None:
        self.servers = list(servers)
        self.names = list(names)
        self.attempt_timeout = attempt_timeout
        self.path = path
        self.live = list(range(len(servers)))
        self.lock = threading.Lock()
        self.keys: dict[str, str] = {}  # every key ever sent → counter name
        self.acks: dict[str, Ack] = {}
        self.attempts = 0
        self.durations: list[tuple[float, float, str]] = []  # (sent, seconds, outcome)
        self.failures: list[str] = []  # what went wrong with failed attempts (first 200)
        self.failed_attempts = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- one increment -------------------------------------------------------------

    def increment(
        self,
        name: str,
        key: str | None = None,
        give_up: float = 30.0,
        *,
        via: int | None = None,
        tries: int | None = None,
        payload: dict | None = None,
    ) -> Ack | None:
        """POST one increment of ``name`` with ``key`` until acknowledged, or until
        ``give_up`` seconds passed or ``tries`` attempts failed (then None: the key stays
        pending). The first attempt goes to server ``via`` if given, else to a random
        live one; later ones to another live server when there is one."""
        key = key or uuid.uuid4().hex
        with self.lock:
            self.keys.setdefault(key, name)
        end = time.monotonic() + give_up
        last: int | None = None
        made = 0
        while time.monotonic() < end and (tries is None or made < tries):
            live = [i for i in self.live if i != last] or list(self.live)
            index = via if via is not None and made == 0 else random.choice(live)
            server = self.servers[index]
            sent = time.monotonic()
            made += 1
            with self.lock:
                self.attempts += 1
            outcome = "error"
            try:
                result = server.post(
                    self.path.format(name),
                    payload,
                    timeout=self.attempt_timeout,
                    headers={"Idempotency-Key": key},
                )
            except OSError as exc:  # refused, reset, timed out: the same key goes again
                outcome = type(exc).__name__
                self._failed(f"{name} {key} via host{index}: {outcome}: {exc}")
            else:
                outcome = str(result.status)
                if result.status == 200:
                    ack = Ack(name, key, result.body["value"], sent, time.monotonic(), index, made)
                    with self.lock:
                        self.acks[key] = ack
                        self.durations.append((sent, ack.acked - sent, outcome))
                    return ack
                self._failed(f"{name} {key} via host{index}: {result}")
            with self.lock:
                self.durations.append((sent, time.monotonic() - sent, outcome))
            last = index
            time.sleep(0.05)
        return None

    def _failed(self, what: str) -> None:
        with self.lock:
            self.failed_attempts += 1
            if len(self.failures) < 200:
                self.failures.append(f"{time.monotonic():.3f} {what}")

    # -- many clients --------------------------------------------------------------

    def start(self, threads: int, pick: Callable[[], str] | None = None) -> None:
        """Start ``threads`` clients, each incrementing random counters until stopped."""
        pick = pick or (lambda: random.choice(self.names))

        def client() -> None:
            while not self._stop.is_set():
                self.increment(pick())

        for _ in range(threads):
            thread = threading.Thread(target=client, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 60.0) -> None:
        """Stop the clients; each finishes (or gives up) the increment in hand."""
        self._stop.set()
        end = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, end - time.monotonic()))
        alive = [t for t in self._threads if t.is_alive()]
        assert not alive, f"{len(alive)} client threads still running after {timeout}s"

    def mark_dead(self, index: int) -> None:
        """Clients stop choosing server ``index`` (a client that saw it die)."""
        with self.lock:
            self.live = [i for i in self.live if i != index]

    def mark_alive(self, index: int) -> None:
        """Clients may choose server ``index`` again."""
        with self.lock:
            self.live = sorted({*self.live, index})

    def resolve(self, give_up: float = 30.0) -> list[str]:
        """Send every pending key again until acknowledged; returns those that never were."""
        pending = [(k, n) for k, n in list(self.keys.items()) if k not in self.acks]
        for key, name in pending:
            self.increment(name, key, give_up=give_up)
        return [k for k in self.keys if k not in self.acks]

    # -- what the clients saw ------------------------------------------------------

    def acks_of(self, name: str) -> list[Ack]:
        with self.lock:
            return [a for a in self.acks.values() if a.name == name]

    def keys_of(self, name: str) -> list[str]:
        with self.lock:
            return [k for k, n in self.keys.items() if n == name]

    def slowest(self, count: int = 5) -> list[tuple[float, float, str]]:
        """The slowest attempts: (sent, seconds, outcome)."""
        with self.lock:
            return sorted(self.durations, key=lambda d: -d[1])[:count]

    def wait_acks(self, count: int, timeout: float) -> None:
        """Wait until at least ``count`` increments were acknowledged."""
        end = time.monotonic() + timeout
        while len(self.acks) < count:
            assert time.monotonic() < end, (
                f"only {len(self.acks)} of {count} increments acknowledged in {timeout}s; "
                f"failures: {self.failures[:20]}"
            )
            time.sleep(0.05)

    def check_exact(self, names: Iterable[str] | None = None) -> dict[str, int]:
        """Every key acknowledged, and per counter the acknowledged values are exactly
        1..n, n being its number of keys (none lost, none applied twice). Returns n."""
        pending = [k for k in self.keys if k not in self.acks]
        assert not pending, f"{len(pending)} increments never acknowledged: {pending[:5]}"
        counts = {}
        for name in names or self.names:
            values = sorted(a.value for a in self.acks_of(name))
            n = len(self.keys_of(name))
            assert values == list(range(1, n + 1)), (
                f"counter {name}: {n} increments, acknowledged values "
                f"{_describe_mismatch(values, n)}"
            )
            counts[name] = n
        return counts


def _describe_mismatch(values: list[int], n: int) -> str:
    seen: dict[int, int] = {}
    for v in values:
        seen[v] = seen.get(v, 0) + 1
    duplicates = sorted(v for v, c in seen.items() if c > 1)
    missing = sorted(set(range(1, n + 1)) - set(values))
    extra = sorted(v for v in seen if not 1 <= v <= n)
    return f"duplicated {duplicates[:10]}, missing {missing[:10]}, out of range {extra[:10]}"
