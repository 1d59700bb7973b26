"""Binding WeChat identities to archives with an SMS code: consent, the bind flow, bound archives."""

from ..rate_limits import RateLimits
from .bound import BoundArchives
from .consent import NOTICE_VERSION, ConsentService
from .service import BindingService, BindRequest, Caller, parse_bind_request

__all__ = [
    "NOTICE_VERSION",
    "BindRequest",
    "BindingService",
    "BoundArchives",
    "Caller",
    "ConsentService",
    "RateLimits",
    "parse_bind_request",
]
