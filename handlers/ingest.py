"""``POST /api/v1/ingest``: the upstream public-health system pushes records as they are made.

A machine API: no session, no cookie, no XSRF token; the HMAC-SM3 signature over timestamp and
body is the proof (``wechat_backend/ingest/signed.py``). The body is streamed: it may exceed
``[limits] max_body_bytes`` up to ``[ingest] max_request_bytes``, and the signature is computed
while it arrives.
"""

from __future__ import annotations

import logging
import secrets
from tempfile import SpooledTemporaryFile
from typing import Any

import tornado.web
from tornado.web import url

from wechat_backend.errors import NotLoggedIn, TooLarge, Unavailable
from wechat_backend.ingest import signed

from .base import BaseHandler

log = logging.getLogger("wechat_backend.ingest")

IN_MEMORY_BYTES = 1 << 20  # a larger body goes to a temporary file
CHUNKED_SLACK = 1 << 20  # see prepare


@tornado.web.stream_request_body
class IngestHandler(BaseHandler):
    xsrf_exempt = True  # signed by the caller; there is no cookie to forge

    _signer: signed.Signer | None = None
    _body: Any = None  # SpooledTemporaryFile
    _received = 0

    async def prepare(self) -> None:
        # No session, no cookie: only a signed request reaches post (checked here, then over the body).
        self.request_id = secrets.token_hex(8)
        self.set_header("X-Request-Id", self.request_id)
        if self.request.method != "POST":
            raise tornado.web.HTTPError(405)
        timestamp = self.request.headers.get(signed.TIMESTAMP_HEADER)
        refusal = signed.check_headers(
            timestamp, self.request.headers.get(signed.SIGNATURE_HEADER), self.services.clock.now().timestamp()
        )
        if refusal is not None:
            raise NotLoggedIn(refusal.message, field=refusal.header)
        key = signed.signing_key(self.services.settings.security.ingest_hmac_key)
        if key is None or self.services.redis is None:
            raise Unavailable()  # no key to check with, or no memory of accepted signatures
        assert timestamp is not None  # check_headers refused a missing one
        cap = self.services.settings.ingest.max_request_bytes
        declared = self.request.headers.get("Content-Length", "")
        connection: Any = self.request.connection
        if declared:
            if declared.isascii() and declared.isdigit() and int(declared) > cap:
                # Answered from the headers; the body is never read and the connection closes after
                # (the limit is raised only so that tornado does not answer a second time).
                connection.set_max_body_size(int(declared))
                raise self._too_large()
            connection.set_max_body_size(cap)
        else:
            # Chunked: tornado refuses a chunk that would pass its limit with a bare 400 before the
            # handler sees it, so its limit sits past the cap and data_received answers the 413
            # (only a single chunk announced more than CHUNKED_SLACK past the cap still gets the 400).
            connection.set_max_body_size(cap + CHUNKED_SLACK)
        self._signer = signed.Signer(key, timestamp)
        self._body = SpooledTemporaryFile(max_size=IN_MEMORY_BYTES)  # noqa: SIM115 (closed by post or _discard)

    def data_received(self, chunk: bytes) -> None:
        if self._finished or self._body is None or self._signer is None:
            return
        self._received += len(chunk)
        if self._received > self.services.settings.ingest.max_request_bytes:
            self._discard()
            error = self._too_large()
            self.log_exception(TooLarge, error, None)
            self.send_error(error.status, exc_info=(TooLarge, error, None))
            return
        self._signer.update(chunk)
        self._body.write(chunk)

    async def post(self) -> None:
        assert self._signer is not None and self._body is not None
        signature = self.request.headers[signed.SIGNATURE_HEADER]
        refusal = signed.check_signature(self._signer.hexdigest(), signature)
        if refusal is not None:
            raise NotLoggedIn(refusal.message, field=refusal.header)
        await signed.claim_signature(self.services.redis, self.services.settings, signature)
        body, self._body = self._body, None  # ours now: a dropped connection must not close it mid-import
        with body:
            body.seek(0)
            try:
                report = await self.services.ingest.import_objects(body, statuses=True)
            except BaseException:  # not imported (database down…): the same request may be sent again
                await signed.release_signature(self.services.redis, self.services.settings, signature)
                raise
        log.info("ingest request_id=%s %s", self.request_id, signed.counts(report))  # counts only
        self.set_header("Cache-Control", "no-store")
        self.finish(signed.answer(report))

    def _too_large(self) -> TooLarge:
        return TooLarge(f"请求体超过 {self.services.settings.ingest.max_request_bytes} 字节：请分成几次发送")

    def on_finish(self) -> None:
        self._discard()

    def on_connection_close(self) -> None:
        super().on_connection_close()  # ends the wait for the body
        self._discard()

    def _discard(self) -> None:
        body, self._body = self._body, None
        if body is not None:
            body.close()


routes = [url(r"/api/v1/ingest", IngestHandler, name="api_ingest")]
