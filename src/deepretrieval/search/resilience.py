"""One resilience layer for every backend and endpoint: retries, rate limiting, failure accounting.

A call that may meet a transient fault (an HTTP search, a reward batch on a backend that does not retry
itself, a chat-completions request) runs under a :class:`Retrier`:

- **Retries** with exponential back-off and jitter (:func:`backoff_delay`), honouring a server's
  ``Retry-After`` (:func:`retry_after_seconds`): the wait is the longer of the two, and a wait longer than
  ``max_wait`` is not waited for. What counts as transient is the caller's ``classify`` (by default a
  :class:`ServiceFault`); anything else propagates at once, unretried and uncounted as a retry.
- **Rate limiting**: an optional :class:`RateLimiter` (a token bucket shared per service and process),
  taken before every attempt and paused as a whole by a ``Retry-After``.
- **Failure accounting**: attempts, answers and the failed attempts by reason (:meth:`Retrier.counts`),
  so that every attempt is accounted for: ``answered + sum(retried) == attempts``.
- **One layer retries a call**: whoever holds a backend that retries its own calls
  (:func:`retries_itself`) calls it once. A persistent outage then costs exactly ``attempts`` calls,
  never attempts x attempts; after them the caller's error (``failure``) is raised, never a result.

The persistent result cache is :class:`~deepretrieval.search.cache.ResultCache`.
"""

from __future__ import annotations

import email.utils
import logging
import math
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class ServiceFault(Exception):
    """A reply that is the service's fault (an error status, an unusable body): retried."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Fault:
    """A transient failure of one attempt: why (its reason is the text before the first ``:``), and how long
    the server asked to wait (seconds), if it did."""

    problem: str
    retry_after: float | None = None

    @property
    def reason(self) -> str:
        return self.problem.split(":")[0]


def service_fault(exc: BaseException) -> Fault | None:
    """The default classification: a :class:`ServiceFault` is transient, anything else is not."""
    if isinstance(exc, ServiceFault):
        return Fault(str(exc), exc.retry_after)
    return None


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a call is tried."""

    attempts: int = 6  # in all, the first included
    backoff: float = 1.0  # seconds: the ceiling of the first back-off; doubles each time
    max_backoff: float = 30.0
    max_wait: float = 120.0  # a longer Retry-After is not waited for: the call fails at once
    max_wait_field: str = "max_wait"  # named in that error: where to raise the limit

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {self.attempts}")
        if self.backoff < 0 or self.max_backoff < 0 or self.max_wait < 0:
            raise ValueError("backoff, max_backoff and max_wait must not be negative")


class RateLimiter:
    """A token bucket: ``rate`` tokens a second, at most ``burst`` saved up; thread-safe.

    Reservations may run the bucket negative: a caller is told how long to wait for its token, so that
    concurrent workers are spaced evenly instead of racing for each token.
    """

    _shared: ClassVar[dict[tuple[str, float, int], RateLimiter]] = {}
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        rate: float,
        burst: int = 1,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be positive, got {rate}")
        self.rate, self.burst = float(rate), int(burst)
        self._clock, self._sleep = clock, sleep
        self._tokens = float(burst)
        self._stamp = clock()
        self._lock = threading.Lock()

    @classmethod
    def shared(cls, scope: str, rate: float, burst: int = 1) -> RateLimiter:
        """The process's bucket for ``scope`` (a service's host) at this rate: one for all its clients."""
        key = (scope, float(rate), int(burst))
        with cls._shared_lock:
            if key not in cls._shared:
                cls._shared[key] = cls(rate, burst)
            return cls._shared[key]

    def _refill(self) -> float:
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        return now

    def reserve(self) -> float:
        """Take a token; the seconds to wait before using it."""
        with self._lock:
            self._refill()
            self._tokens -= 1.0
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def acquire(self) -> float:
        """Wait for a token; the seconds waited."""
        delay = self.reserve()
        if delay > 0:
            self._sleep(delay)
        return delay

    def pause(self, seconds: float) -> None:
        """No new token for ``seconds`` (the server said Retry-After): every worker holds back."""
        with self._lock:
            self._refill()
            self._tokens = min(self._tokens, 1.0 - seconds * self.rate)


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """A ``Retry-After`` header in seconds (delay-seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, seconds) if math.isfinite(seconds) else None


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Exponential back-off, half fixed and half random, so that workers that failed together spread out."""
    ceiling = min(cap, base * 2**attempt)
    return ceiling / 2 + rng.uniform(0, ceiling / 2)


class Retrier:
    """Runs calls under a :class:`RetryPolicy`, counting every attempt; thread-safe.

    ``name`` starts every error and log line; ``failure`` is the exception type raised when a call gives
    up (``SearchFailure`` for searches, ``EndpointFailure`` for a policy's endpoint); ``classify`` says which
    exceptions are transient; ``limiter`` (optional) is waited on before each attempt; ``sleep`` and
    ``seed`` make the waits testable.
    """

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        name: str,
        failure: Callable[[str], Exception],
        classify: Callable[[BaseException], Fault | None] = service_fault,
        limiter: RateLimiter | None = None,
        sleep: Callable[[float], None] = time.sleep,
        seed: int | None = None,
    ) -> None:
        self.policy, self.name, self.failure = policy, name, failure
        self.classify, self.limiter, self._sleep = classify, limiter, sleep
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._retried: Counter[str] = Counter()

    def __repr__(self) -> str:
        return f"Retrier({self.name!r}, attempts={self.policy.attempts})"

    def call(self, attempt: Callable[[], T], *, where: str = "") -> T:
        """``attempt()`` until it returns; a transient fault is retried, the last one raises ``failure``."""
        where = where or self.name
        for number in range(self.policy.attempts):
            if self.limiter is not None:
                self.limiter.acquire()
            self._count("attempts")
            try:
                result = attempt()
            except Exception as exc:
                fault = self.classify(exc)
                if fault is None:
                    raise
                self._retry_or_fail(where, number, fault)
            else:
                self._count("answered")
                return result
        raise AssertionError("unreachable")  # the last attempt raised in _retry_or_fail

    def _retry_or_fail(self, where: str, number: int, fault: Fault) -> None:
        policy = self.policy
        with self._lock:
            self._retried[fault.reason] += 1
        if number + 1 >= policy.attempts:
            self._count("failures")
            raise self.failure(
                f"{self.name}: no usable reply from {where} after {policy.attempts} attempts ({fault.problem})"
            )
        if fault.retry_after is not None and fault.retry_after > policy.max_wait:
            self._count("failures")
            raise self.failure(
                f"{self.name}: {where} asked to wait {fault.retry_after:.0f} s ({fault.problem}), more than the "
                f"{policy.max_wait:.0f} s allowed ({policy.max_wait_field})"
            )
        with self._lock:
            delay = backoff_delay(number, policy.backoff, policy.max_backoff, self._rng)
        if fault.retry_after is not None:
            if self.limiter is not None:
                self.limiter.pause(fault.retry_after)
            delay = max(delay, fault.retry_after)
        log.warning(
            "%s: attempt %d/%d failed (%s); retrying in %.2f s",
            self.name,
            number + 1,
            policy.attempts,
            fault.problem,
            delay,
        )
        if delay > 0:
            self._sleep(delay)

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    def counts(self) -> tuple[Counter[str], Counter[str]]:
        """(``attempts``, ``answered``, ``failures`` counts; failed attempts by reason)."""
        with self._lock:
            return Counter(self._counts), Counter(self._retried)


def retries_itself(backend: Any) -> bool:
    """Whether ``backend`` retries its own calls (it holds a :class:`Retrier`): then no caller retries it."""
    return isinstance(getattr(backend, "retrier", None), Retrier)
