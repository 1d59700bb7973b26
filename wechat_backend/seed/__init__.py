"""Deterministic synthetic residents of 聊城市 in the ingest format (DESIGN.md, "Ingest format").

    counts = write_jsonl("demo.jsonl", 1000, seed=7, today=datetime.date(2026, 11, 25))
    # {"institution": 42, "archive": 1000, "record": ...}

The same `seed` and `today` give a byte-identical file. Modules: `places` (counties,
institutions, villages), `names`, `people` (age pyramid, identity, contacts), `programmes`
(who is managed for what), `basic_info` (个人基本信息表), one module per family of service
forms (`followups`, `sensitive`, `exams`, `maternal`, `children`, `outpatient`) and
`generator`, which puts them in file order.
"""

from wechat_backend.seed.generator import default_today, generate, write_jsonl

__all__ = ["default_today", "generate", "write_jsonl"]
