"""The /wechat tests run on WeChat's published 2014 sample: its token, key, app id and clock."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import make_settings
from wechat_sample import WECHAT_SETTINGS, sample_clock

from wechat_backend.clock import FixedClock
from wechat_backend.config import Settings


@pytest.fixture
def clock() -> FixedClock:
    return sample_clock()


@pytest.fixture
def settings(tmp_path: Path, db_url: str, redis_url: str) -> Settings:
    return make_settings(
        tmp_path, db_url, redis_url, wechat=WECHAT_SETTINGS, server={"public_base_url": "https://jkda.example.cn"}
    )
