"""The console's security pieces that are not the workflow's data: login throttling, CSRF
comparison, and the response headers every page gets."""

from __future__ import annotations

import secrets
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field

SESSION_COOKIE = "surv_session"
LOGIN_CSRF_COOKIE = "surv_login_csrf"
MAX_FAILURES = 5  # per user name and per client address, within the window below
FAILURE_WINDOW_S = 15 * 60.0

# Pages are our own templates; the only script is served by us (htmx from its package, and
# console.js). Inline styles are allowed for the report's SVG charts.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # same-origin, not no-referrer: with no-referrer browsers send "Origin: null" on form
    # posts, and the origin check of state changes needs the real one
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def same_token(given: str | None, expected: str | None) -> bool:
    """Constant-time comparison; an empty or missing token never matches."""
    if not given or not expected:
        return False
    return secrets.compare_digest(given.encode(), expected.encode())


@dataclass
class LoginThrottle:
    """Failed logins per user name and per client address; beyond ``MAX_FAILURES`` within
    ``FAILURE_WINDOW_S`` further attempts are refused (429) until the oldest failure ages out.
    In memory: one console process guards its own door (restarting it clears the counts)."""

    max_failures: int = MAX_FAILURES
    window_s: float = FAILURE_WINDOW_S
    _failures: dict[str, deque[float]] = field(default_factory=lambda: defaultdict(deque))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self._failures[key]
        while q and q[0] <= now - self.window_s:
            q.popleft()
        return q

    def retry_after(self, *keys: str) -> int:
        """Seconds until an attempt for these keys is allowed (0: now)."""
        now = time.monotonic()
        with self._lock:
            waits = [
                q[0] + self.window_s - now
                for k in keys
                if len(q := self._recent(k, now)) >= self.max_failures
            ]
        return int(max(waits, default=0) + 0.999)

    def failed(self, *keys: str) -> None:
        now = time.monotonic()
        with self._lock:
            for k in keys:
                self._recent(k, now).append(now)

    def succeeded(self, name_key: str) -> None:
        with self._lock:
            self._failures.pop(name_key, None)
