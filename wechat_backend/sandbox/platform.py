"""The simulated api.weixin.qq.com: one table from path to function, faults and token checks first.

Paths are relative to the sandbox base and equal the real ones (``cgi-bin/token``,
``sns/jscode2session``, …), so ``[wechat] api_base_url = "<public_base_url>/sandbox/"`` is the only
thing that differs between the sandbox and WeChat.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from . import menus, messages, tokens, users
from .calls import Api, PlatformCall, PlatformError, error_json
from .state import SandboxState

APIS: dict[str, Api] = {**tokens.APIS, **messages.APIS, **menus.APIS, **users.APIS}


async def apply_fault(state: SandboxState, api: str) -> dict[str, Any] | None:
    """Wait and/or fail as a fault set through ``POST /api/faults`` says; the error answer, if any."""
    fault = state.take_fault(api)
    if fault is None:
        return None
    if fault.latency_ms > 0:
        await asyncio.sleep(fault.latency_ms / 1000)
    return error_json(fault.errcode) if fault.errcode else None


async def answer(state: SandboxState, path: str, query: Mapping[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
    """HTTP status and JSON for one platform call. Unknown paths are 404 with errcode 48001."""
    state.calls[path] += 1
    api = APIS.get(path)
    if api is None:
        return 404, error_json(48001, f"the sandbox does not implement {path}")
    failed = await apply_fault(state, path)
    if failed is not None:
        return 200, failed
    call = PlatformCall(path, query, body)
    try:
        if api.needs_token:
            call = PlatformCall(path, query, body, tokens.check_token(state, call))
        return 200, api.answer(state, call)
    except PlatformError as exc:
        return 200, exc.to_json()
