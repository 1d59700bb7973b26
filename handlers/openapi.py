"""``/api/v1/openapi.json``: the resident JSON API (and the upstream's signed push) as OpenAPI 3.1,
written next to the routes it describes (``handlers/api.py``, ``handlers/archive.py``,
``handlers/ingest.py``) so they change together."""

from __future__ import annotations

from typing import Any

from wechat_backend.notify.kinds import CHOOSABLE


def _error(status: str, codes: str) -> dict[str, Any]:
    return {
        "description": f"{status}: {codes}",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _body(ref: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}


def _ok(ref: str, description: str = "成功") -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}},
    }


_AUTH = [{"bearer": []}, {"cookie": []}]
_COMMON = {"401": _error("401", "not_logged_in"), "503": _error("503", "unavailable")}
_STR = {"type": "string"}
_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "pattern": "^[0-9A-Za-z_-]{1,24}$"}}


def _read(summary: str, ref: str, extra: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A read of one bound archive: 404 for any id the caller may not read, one 403 not_open."""
    return {
        "get": {
            "summary": summary,
            "security": _AUTH,
            "parameters": [_ID, *(extra or [])],
            "responses": {
                "200": _ok(ref),
                "403": _error("403", "not_open（暂未开放自助查询，无论原因）"),
                "404": _error("404", "not_found"),
                **_COMMON,
            },
        }
    }


_ARRAY = {"type": "array"}
_FIELD = {
    "type": "object",
    "properties": {"label": _STR, "value": _STR, "unit": _STR, "reference": _STR, "flag": {"type": ["string", "null"]}},
}

# What a record item of the list and a whole record both say about the record.
_RECORD_HEAD = {
    "id": _STR,
    "kind": _STR,
    "title": _STR,
    "date": _STR,
    "institution": _STR,
    "next_due_date": {"type": ["string", "null"]},
}

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "居民健康档案 · 居民接口",
        "version": "1",
        "description": "小程序用 Bearer 令牌（POST /api/v1/mp/login 取得），公众号网页用登录后的会话 Cookie"
        "（此时非 GET 请求须带 X-XSRFToken 头）。错误均为 JSON {error, message}，message 为可直接展示的中文。",
    },
    "paths": {
        "/api/v1/mp/login": {
            "post": {
                "summary": "小程序登录：wx.login 的 code 换取令牌",
                "requestBody": _body("MpLogin"),
                "responses": {"200": _ok("Token"), "400": _error("400", "bad_input"), **_COMMON},
            }
        },
        "/api/v1/consent": {
            "get": {"summary": "当前隐私说明", "responses": {"200": _ok("Notice")}},
            "post": {
                "summary": "同意当前版本的隐私说明（首次绑定前必须）",
                "security": _AUTH,
                "requestBody": _body("ConsentIn"),
                "responses": {"200": _ok("ConsentOut"), "400": _error("400", "bad_input（版本已更新）"), **_COMMON},
            },
        },
        "/api/v1/bind/start": {
            "post": {
                "summary": "开始绑定：核对姓名、身份证号（或新生儿的档案编号）与档案登记手机号，发送验证码",
                "security": _AUTH,
                "requestBody": _body("BindStart"),
                "responses": {
                    "201": _ok("BindStarted", "验证码已发送"),
                    "400": _error("400", "bad_input（含 field）；mismatch（姓名、证件号、手机号任一不符，答复相同）"),
                    "403": _error("403", "consent_required；not_open（暂未开放自助查询，含 consult_phone）"),
                    "409": _error("409", "conflict（已绑定或超过绑定数量）"),
                    "429": _error("429", "rate_limited，见 Retry-After"),
                    **_COMMON,
                },
            }
        },
        "/api/v1/bind/resend": {
            "post": {
                "summary": "重新发送验证码（60 秒后，新码取代旧码）",
                "security": _AUTH,
                "requestBody": _body("BindId"),
                "responses": {
                    "200": _ok("BindStarted"),
                    "404": _error("404", "not_found"),
                    "429": _error("429", "rate_limited"),
                    **_COMMON,
                },
            }
        },
        "/api/v1/bind/verify": {
            "post": {
                "summary": "提交验证码，完成绑定（5 分钟内有效，最多输错 5 次）",
                "security": _AUTH,
                "requestBody": _body("BindVerify"),
                "responses": {
                    "200": _ok("Archive", "绑定成功，返回该档案"),
                    "400": _error("400", "bad_input（field=code：错误、过期或已失效）"),
                    "404": _error("404", "not_found（不是本人发起的绑定）"),
                    "409": _error("409", "conflict"),
                    **_COMMON,
                },
            }
        },
        "/api/v1/archives": {
            "get": {"summary": "我绑定的档案", "security": _AUTH, "responses": {"200": _ok("ArchiveList"), **_COMMON}}
        },
        "/api/v1/archives/{id}": _read("档案首页：姓名（部分隐藏）、建档机构、下次随访和各部分的条数", "Cover"),
        "/api/v1/archives/{id}/basic": _read("个人基本信息（部分隐藏，不含不开放的信息）", "Basic"),
        "/api/v1/archives/{id}/records": _read(
            "服务记录，最新的在前；kind 为部分的 key（exam、hypertension…），cursor 为上一页的 next_cursor",
            "RecordList",
            extra=[
                {"name": "kind", "in": "query", "required": False, "schema": _STR},
                {"name": "cursor", "in": "query", "required": False, "schema": _STR},
            ],
        ),
        "/api/v1/archives/{id}/trends": _read(
            "变化趋势：血压、空腹血糖、体重、体质指数；5 岁以下儿童的 Z 评分", "Trends"
        ),
        "/api/v1/archives/{id}/access-log": _read("谁查看了这份档案（最近 50 次）", "AccessLog"),
        "/api/v1/archives/{id}/note": {
            "put": {
                "summary": "给自己的这份绑定加备注（如“大宝”，最多 8 个字，只有自己看到）",
                "security": _AUTH,
                "parameters": [_ID],
                "requestBody": _body("Note"),
                "responses": {
                    "200": _ok("Note"),
                    "400": _error("400", "bad_input"),
                    "404": _error("404", "not_found"),
                    **_COMMON,
                },
            }
        },
        "/api/v1/records/{id}": _read("一条服务记录，按国家表单的栏目", "Record"),
        "/api/v1/archives/{id}/bindings": {
            "get": {
                "summary": "档案本人查看有哪些微信绑定了这份档案",
                "security": _AUTH,
                "parameters": [_ID],
                "responses": {"200": _ok("BindingList"), "404": _error("404", "not_found（不是档案本人）"), **_COMMON},
            }
        },
        "/api/v1/bindings/{id}": {
            "delete": {
                "summary": "解除绑定（本人的绑定，或档案本人解除他人的绑定）",
                "security": _AUTH,
                "parameters": [_ID],
                "responses": {"204": {"description": "已解除"}, "404": _error("404", "not_found"), **_COMMON},
            }
        },
        "/api/v1/ingest": {
            "post": {
                "summary": "上游公共卫生系统推送机构、档案和服务记录（与导入文件同一格式，逐行答复）",
                "description": "请求体为 JSON Lines，每行一个对象，格式同 wechat-backend import 的导入文件；"
                "校验、版本规则和新记录提醒与文件导入相同。不用 Cookie、Bearer 令牌或 XSRF。"
                '签名：X-WB-Signature = HMAC-SM3(key, X-WB-Timestamp + "\\n" + 请求体原文) 的小写十六进制，'
                "key 为 [security] ingest_hmac_key 经 base64 解码后的字节；时间戳与服务器相差不得超过 300 秒，"
                "同一签名只接受一次。请求体不超过 [ingest] max_request_bytes（默认 10,000,000 字节），"
                "可用 Content-Length 或分块传输。",
                "security": [{"ingestTimestamp": [], "ingestSignature": []}],
                "requestBody": {
                    "required": True,
                    "content": {"application/x-ndjson": {"schema": {"type": "string", "description": "JSON Lines"}}},
                },
                "responses": {
                    "200": _ok("IngestReport", "已处理；每个非空行的结果（被拒收的行带原因）"),
                    "401": _error("401", "not_logged_in（签名头缺少或有误、时间戳超出 5 分钟、签名不符；含 field）"),
                    "409": _error("409", "conflict（同一签名已处理过：用当前时间重新签名后再发）"),
                    "413": _error("413", "too_large（超过 [ingest] max_request_bytes，未导入任何一行）"),
                    "503": _error("503", "unavailable（未配置签名密钥或 Redis 不可用，未导入任何一行）"),
                },
            }
        },
        "/api/v1/notify/settings": {
            "get": {
                "summary": "提醒设置：我绑定的每份档案各类提醒是否发送（true 为发送）；available 为该类提醒是否已开通",
                "security": _AUTH,
                "responses": {"200": _ok("NotifySettings"), **_COMMON},
            },
            "put": {
                "summary": "修改提醒设置：只改写明的档案和类型，本人的公众号和小程序同时生效；"
                "“档案被绑定”是安全提醒，不能关闭",
                "security": _AUTH,
                "requestBody": _body("NotifySettingsIn"),
                "responses": {
                    "200": _ok("NotifySettings", "已保存，返回新的设置"),
                    "400": _error("400", "bad_input（未知类型、binding_added、非 true/false、格式不对）"),
                    "404": _error("404", "not_found（不是本人绑定的档案）"),
                    **_COMMON,
                },
            },
        },
        "/api/v1/logout": {
            "post": {
                "summary": "退出登录：会话在服务器端结束（未登录时同样答复 204）",
                "security": [*_AUTH, {}],
                "responses": {"204": {"description": "已退出"}},
            }
        },
    },
    "components": {
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            "cookie": {"type": "apiKey", "in": "cookie", "name": "wb_session"},
            "ingestTimestamp": {"type": "apiKey", "in": "header", "name": "X-WB-Timestamp"},
            "ingestSignature": {"type": "apiKey", "in": "header", "name": "X-WB-Signature"},
        },
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error", "message"],
                "properties": {"error": _STR, "message": _STR, "field": _STR, "consult_phone": _STR},
            },
            "MpLogin": {"type": "object", "required": ["code"], "properties": {"code": _STR}},
            "Token": {"type": "object", "properties": {"token": _STR, "expires_in": {"type": "integer"}}},
            "Notice": {
                "type": "object",
                "properties": {"version": _STR, "title": _STR, "text": _STR, "agreed": {"type": "boolean"}},
            },
            "ConsentIn": {"type": "object", "required": ["version"], "properties": {"version": _STR}},
            "ConsentOut": {"type": "object", "properties": {"version": _STR, "agreed": {"type": "boolean"}}},
            "BindStart": {
                "type": "object",
                "required": ["name", "phone", "relation"],
                "properties": {
                    "name": _STR,
                    "id_number": {"type": "string", "description": "18 位身份证号；与 archive_no 二选一"},
                    "archive_no": {"type": "string", "description": "17 位档案编号（尚无身份证号的新生儿）"},
                    "phone": {"type": "string", "description": "档案登记的手机号（家人可用登记的联系人电话）"},
                    "relation": {"enum": ["self", "child", "parent", "spouse", "other"]},
                },
            },
            "BindStarted": {
                "type": "object",
                "properties": {
                    "bind_id": _STR,
                    "phone": {"type": "string", "description": "接收验证码的手机号（部分隐藏）"},
                    "expires_in": {"type": "integer"},
                    "resend_after": {"type": "integer"},
                },
            },
            "BindId": {"type": "object", "required": ["bind_id"], "properties": {"bind_id": _STR}},
            "BindVerify": {
                "type": "object",
                "required": ["bind_id", "code"],
                "properties": {"bind_id": _STR, "code": {"type": "string", "pattern": "^[0-9]{6}$"}},
            },
            "Archive": {
                "type": "object",
                "properties": {
                    "id": _STR,
                    "name": {"type": "string", "description": "部分隐藏，如 刘**"},
                    "id_number": {"type": ["string", "null"], "description": "部分隐藏"},
                    "gender": _STR,
                    "age": {"type": "integer"},
                    "institution": _STR,
                    "consult_phone": _STR,
                    "open": {"type": "boolean", "description": "false 时只显示 message（暂未开放自助查询）"},
                    "message": _STR,
                    "binding_id": _STR,
                    "relation": _STR,
                },
            },
            "Cover": {
                "type": "object",
                "properties": {
                    "id": _STR,
                    "name": _STR,
                    "note": _STR,
                    "gender": _STR,
                    "age": {"type": "integer"},
                    "relation": _STR,
                    "relation_label": _STR,
                    "institution": _STR,
                    "consult_phone": _STR,
                    "doctor": _STR,
                    "filed_on": {"type": ["string", "null"]},
                    "tags": {**_ARRAY, "items": _STR},
                    "completeness": {"type": ["integer", "null"]},
                    "next_due": {**_ARRAY, "items": {"type": "object"}},
                    "sections": {
                        **_ARRAY,
                        "items": {
                            "type": "object",
                            "properties": {"key": _STR, "title": _STR, "count": {"type": "integer"}},
                        },
                    },
                },
            },
            "Basic": {"type": "object", "properties": {"id": _STR, "fields": {**_ARRAY, "items": _FIELD}}},
            "RecordItem": {"type": "object", "properties": {**_RECORD_HEAD, "summary": _STR}},
            "RecordList": {
                "type": "object",
                "properties": {
                    "records": {**_ARRAY, "items": {"$ref": "#/components/schemas/RecordItem"}},
                    "next_cursor": {"type": ["string", "null"]},
                },
            },
            "Record": {
                "type": "object",
                "properties": {
                    **_RECORD_HEAD,
                    "doctor": _STR,
                    "sections": {
                        **_ARRAY,
                        "items": {
                            "type": "object",
                            "properties": {"title": _STR, "fields": {**_ARRAY, "items": _FIELD}},
                        },
                    },
                },
            },
            "Trends": {
                "type": "object",
                "properties": {
                    "series": {
                        **_ARRAY,
                        "items": {
                            "type": "object",
                            "properties": {
                                "key": _STR,
                                "label": _STR,
                                "unit": _STR,
                                "band": {"type": ["array", "null"]},
                                "points": {**_ARRAY, "description": "[[YYYY-MM-DD, 数值], …]"},
                            },
                        },
                    }
                },
            },
            "AccessLog": {
                "type": "object",
                "properties": {
                    "entries": {
                        **_ARRAY,
                        "items": {"type": "object", "properties": {"at": _STR, "actor": _STR, "section": _STR}},
                    }
                },
            },
            "Note": {"type": "object", "properties": {"note": _STR}},
            "NotifyKinds": {
                "type": "object",
                "description": "提醒类型 → 是否发送",
                "properties": {k: {"type": "boolean"} for k in CHOOSABLE},
                "additionalProperties": False,
            },
            "NotifySettings": {
                "type": "object",
                "properties": {
                    "archives": {
                        **_ARRAY,
                        "items": {
                            "type": "object",
                            "properties": {
                                "id": _STR,
                                "name": {"type": "string", "description": "部分隐藏，如 刘**"},
                                "relation": _STR,
                                "relation_label": _STR,
                                "kinds": {"$ref": "#/components/schemas/NotifyKinds"},
                            },
                        },
                    },
                    "available": {"$ref": "#/components/schemas/NotifyKinds"},
                },
            },
            "NotifySettingsIn": {
                "type": "object",
                "required": ["archives"],
                "properties": {
                    "archives": {
                        **_ARRAY,
                        "items": {
                            "type": "object",
                            "required": ["id", "kinds"],
                            "properties": {"id": _STR, "kinds": {"$ref": "#/components/schemas/NotifyKinds"}},
                        },
                    }
                },
            },
            "IngestReport": {
                "type": "object",
                "properties": {
                    "lines": {
                        **_ARRAY,
                        "description": "按行号排序；空行不列出",
                        "items": {
                            "type": "object",
                            "required": ["line", "status"],
                            "properties": {
                                "line": {"type": "integer", "description": "行号，从 1 起（空行也计数）"},
                                "status": {"enum": ["inserted", "updated", "unchanged", "rejected"]},
                                "reason": {"type": "string", "description": "仅 rejected：拒收原因"},
                            },
                        },
                    },
                    "summary": {
                        "type": "object",
                        "properties": {
                            key: {"type": "integer"}
                            for key in ("lines", "inserted", "updated", "unchanged", "rejected")
                        },
                    },
                },
            },
            "ArchiveList": {
                "type": "object",
                "properties": {"archives": {"type": "array", "items": {"$ref": "#/components/schemas/Archive"}}},
            },
            "BindingList": {
                "type": "object",
                "properties": {
                    "bindings": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "id": _STR,
                                "relation": _STR,
                                "relation_label": _STR,
                                "channel": _STR,
                                "bound_at": _STR,
                                "is_me": {"type": "boolean"},
                                "removable": {"type": "boolean"},
                                "owner": {"type": "boolean"},
                            },
                        },
                    }
                },
            },
        },
    },
}
