"""Pushes to residents through the official account: the outbox and its worker."""

from .outbox import Outbox, Pass, Push, after_failure, retry_delay

__all__ = ["Outbox", "Pass", "Push", "after_failure", "retry_delay"]
