"""The 工作台's front page: a tile for each part the member's role may use."""

from __future__ import annotations

from tornado.web import url

from wechat_backend.staff.scope import may

from .base import StaffHandler

# (route name, title, what it is for, ability)
TILES = (
    ("staff_counties", "开放设置", "各县的开放开关和开放阶段", "county_settings"),
    ("staff_archives", "开放档案", "查找档案、查看能否查询、开放或关闭、批量开放", "open_archives"),
    ("staff_stats", "统计", "建档、开放、绑定和使用情况，可导出", "stats"),
    ("staff_inbox", "居民留言", "阅读并回复居民的问题", "inbox"),
    ("staff_posters", "二维码海报", "下载本机构的关注二维码海报", "posters"),
    ("staff_audit", "审计日志", "谁在何时查看或修改了什么", "audit"),
)


class StaffHomePage(StaffHandler):
    ability = "home"

    async def get(self) -> None:
        tiles = [(name, title, desc) for name, title, desc, ability in TILES if may(self.member, ability)]
        self.render("staff/home.html", tiles=tiles)


routes = [url(r"/staff/?", StaffHomePage, name="staff_home")]
