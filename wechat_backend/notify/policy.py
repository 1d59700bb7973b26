"""What a failed try means for a push: retry when, skip, give up, or wait for the quota. Pure."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from .quiet import next_beijing_midnight

FIRST_RETRY_SECONDS = 60
MAX_RETRY_SECONDS = 3600
UNFOLLOWED = 43004  # the person no longer follows the account
SKIP_ERRCODES = frozenset({40003, 43004, 43101})  # invalid openid, unfollowed, refused this push
QUOTA = 45009  # the account's daily quota of template messages is used up


def retry_delay(attempts: int) -> dt.timedelta:
    """After the ``attempts``-th failed try: 1, 2, 4 … minutes, at most an hour."""
    return dt.timedelta(seconds=min(FIRST_RETRY_SECONDS * 2 ** max(attempts - 1, 0), MAX_RETRY_SECONDS))


@dataclass(frozen=True)
class Outcome:
    """What one try means for its row."""

    status: str  # sent, pending, skipped, dead
    attempts: int  # tries counted, this one included (a quota stop does not count)
    due_at: dt.datetime
    unfollowed: bool = False
    quota: bool = False


def judge(
    errcode: int | None, sent: bool, attempts: int, max_attempts: int, now: dt.datetime, jitter: float = 1.0
) -> Outcome:
    """The row after a try. ``attempts`` counts the tries before this one; ``jitter`` in (0.8, 1]
    spreads the retries of a batch that failed together. ``errcode`` None and not sent: the network
    or the platform failed without an answer."""
    if sent:
        return Outcome("sent", attempts + 1, now)
    if errcode == QUOTA:  # not this push's fault: again after midnight, the try not counted
        return Outcome("pending", attempts, next_beijing_midnight(now), quota=True)
    if errcode in SKIP_ERRCODES:
        return Outcome("skipped", attempts + 1, now, unfollowed=errcode == UNFOLLOWED)
    tries = attempts + 1
    if tries >= max_attempts:
        return Outcome("dead", tries, now)
    return Outcome("pending", tries, now + retry_delay(tries) * jitter)


def after_failure(errcode: int | None, attempts: int, max_attempts: int) -> str:
    """The status after a failed ``attempts``-th try (kept for callers that only need the status)."""
    return judge(errcode, False, attempts - 1, max_attempts, dt.datetime.now(dt.UTC)).status
