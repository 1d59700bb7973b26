"""The privacy notice a person agrees to before the first binding (PIPL art. 29 and 31: separate
consent for health data, a guardian's for a child under 14). A new version asks again."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from .. import audit
from ..clock import Clock
from ..db.models import Consent
from ..errors import BadInput, ConsentRequired

# The notice's version: agreement is recorded per version, and a new version asks everyone again.
# Change the text, change the version (tests/binding/test_bind_flow.py pins each version's text).
# 2026-11: first notice. 2026-12: no promise of reminder pushes or 留言 (neither exists yet);
# names the trends and the access log residents can read. 2026-12b: names the reminders and record
# notices (and how to turn them off) and 留言 (who reads questions), both of which now exist.
NOTICE_VERSION = "2026-12b"

NOTICE_TITLE = "健康档案查询隐私说明"

# Plain words, one point per paragraph: the page shows them as they are.
NOTICE_PARAGRAPHS = (
    "一、能看到什么：绑定后，您可以查看本人或家人在基层医疗卫生机构建立的居民电子健康档案，"
    "包括基本信息（姓名、身份证号、手机号均部分隐藏）、健康体检、慢病随访、儿童和孕产妇保健等服务记录，"
    "以及检查结果的变化趋势。",
    "二、不能看到什么：严重精神障碍、肺结核、艾滋病相关的信息按规定不开放自助查询，"
    "这些档案或记录不会显示；如需了解，请到建档机构当面咨询。",
    "三、怎样确认是您本人或家人：绑定时需填写姓名、身份证号和档案登记的手机号，"
    "验证码只发送到档案登记的手机号（或登记的联系人电话），5分钟内有效。",
    "四、谁能看到查询记录：每一次查看档案都会记录时间和查看人，您可以在档案中的“谁查看了档案”里看到。"
    "档案的本人可以看到有哪些微信账号绑定了自己的档案，并可随时解除；县卫生健康局和建档机构的授权工作人员可以查看访问记录，用于安全审计。",
    "五、怎样解除：在“我的档案”中点“解除绑定”即可，解除后该微信不再能查看这份档案。",
    "六、未满14周岁的儿童：须由父母或其他监护人绑定，监护人同意本说明即代表为孩子同意。",
    "七、提醒和通知：绑定后，公众号会在随访、体检到期前和有新的服务记录时给关注公众号的您发消息，"
    "消息只写类型、日期和机构，不含诊断和检查结果；可在“提醒设置”中按档案关闭。",
    "八、留言：您在公众号中的留言，由建档机构（没有绑定档案时为您扫码关注的机构或市级）的授权工作人员阅读并回复，"
    "留言和回复加密保存，只有您和负责的工作人员能看到。",
    "九、如有疑问或发现信息有误，请联系建档机构（社区卫生服务中心或乡镇卫生院）。",
)


class ConsentService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Clock) -> None:
        self._sessions = sessions
        self._clock = clock

    @staticmethod
    def notice() -> dict[str, object]:
        return {"version": NOTICE_VERSION, "title": NOTICE_TITLE, "text": "\n".join(NOTICE_PARAGRAPHS)}

    async def has_agreed(self, identity_id: int) -> bool:
        async with self._sessions() as s:
            return await agreed(s, identity_id)

    async def agree(self, identity_id: int, version: str, *, request_id: str | None = None) -> None:
        """Record agreement to the current notice; agreeing to an older version is refused."""
        if version != NOTICE_VERSION:
            raise BadInput("version", "隐私说明已更新，请重新阅读后再同意")
        try:
            async with self._sessions.begin() as s:
                if await agreed(s, identity_id):
                    return
                s.add(Consent(identity_id=identity_id, version=version, agreed_at=self._clock.now()))
                audit.record(
                    s,
                    actor_type="identity",
                    actor_id=str(identity_id),
                    action="consent",
                    detail={"version": version},
                    request_id=request_id,
                )
        except IntegrityError:
            return  # agreed twice at once: the first one counts

    async def agreed(self, s: AsyncSession, identity_id: int) -> bool:
        return await agreed(s, identity_id)

    async def require(self, s: AsyncSession, identity_id: int) -> None:
        if not await agreed(s, identity_id):
            raise ConsentRequired()


async def agreed(s: AsyncSession, identity_id: int) -> bool:
    row = await s.scalar(
        select(Consent.id).where(Consent.identity_id == identity_id, Consent.version == NOTICE_VERSION)
    )
    return row is not None
