"""Pushes to residents through the official account: kinds and schedules (pure), the queue written
in the causing transaction, the daily due scan, and the outbox and its worker."""

from .outbox import LEASE, Outbox, Pass, Push, Send
from .policy import Outcome, after_failure, judge, retry_delay
from .quota import QuotaFlag

__all__ = ["LEASE", "Outbox", "Outcome", "Pass", "Push", "QuotaFlag", "Send", "after_failure", "judge", "retry_delay"]
