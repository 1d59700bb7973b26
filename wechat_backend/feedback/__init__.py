"""Residents' questions (留言) and staff answers: routing to an inbox (``routing``), what text is
taken (``text``), the table's queries (``store``), the service (``service``), getting an answer to
its asker (``delivery``) and what the account says about it (``replies``)."""

from .service import FeedbackService, MessageCaller

__all__ = ["FeedbackService", "MessageCaller"]
