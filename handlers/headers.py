"""Security headers on every response the application sends, static files and errors included.

An output transform rather than ``set_default_headers``: it also covers Tornado's own
``StaticFileHandler`` and the sandbox's handlers, which do not derive from ``BaseHandler``.
"""

from __future__ import annotations

import tornado.httputil
from tornado.web import OutputTransform

# No inline script or style anywhere (pages load /static/ files); only this site may frame a page
# (the demo's phone page does); forms post only here.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "frame-src 'self'",
        "frame-ancestors 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "object-src 'none'",
    )
)

SECURITY_HEADERS = (
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Content-Type-Options", "nosniff"),
    # Archive, record and binding ids travel in paths: never in a Referer to anyone, ourselves included.
    ("Referrer-Policy", "no-referrer"),
)


class SecurityHeaders(OutputTransform):
    def transform_first_chunk(
        self, status_code: int, headers: tornado.httputil.HTTPHeaders, chunk: bytes, finishing: bool
    ) -> tuple[int, tornado.httputil.HTTPHeaders, bytes]:
        for name, value in SECURITY_HEADERS:
            if name not in headers:
                headers[name] = value
        return status_code, headers, chunk
