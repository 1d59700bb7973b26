"""Residents' questions (留言) and staff answers: routing to an inbox, answering, delivery."""

from .service import FeedbackService

__all__ = ["FeedbackService"]
