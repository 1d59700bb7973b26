from __future__ import annotations

import datetime as dt

from wechat_backend.services import Services


async def test_follow_unfollow_and_first_scene_are_recorded(services: Services) -> None:
    ids = services.identities
    first = await ids.upsert("oa", "o-1", subscribed=True, scene_institution_code="371522001")
    assert first.subscribed and first.scene_institution_code == "371522001"
    services.clock.advance(minutes=5)  # type: ignore[attr-defined]
    again = await ids.upsert("oa", "o-1", subscribed=False, scene_institution_code="371502001")
    assert again.id == first.id and not again.subscribed
    assert again.scene_institution_code == "371522001"
    login = await ids.upsert("oa", "o-1", unionid="u-1")
    assert login.unionid == "u-1" and not login.subscribed
    assert (await ids.by_openid("oa", "o-1")) == login
    assert (await ids.by_openid("mp", "o-1")) is None
    assert isinstance(services.clock.now(), dt.datetime)
