"""The staff side end to end, through the app and the WeChat sandbox as people use them: a county
admin turns 阳谷县's switch on, its institution bulk-opens its qualified archives and prints its QR
poster, a resident follows by that QR code, binds and reads, asks a question by message, staff
answer from the inbox, the answer reaches the resident's phone — and the statistics the staff
download show each of these counts moved by exactly one."""

# ruff: noqa: F811  (the fixtures imported below are parameters of the test)
from __future__ import annotations

import asyncio
import csv
import io
from typing import Any

from binding.conftest import OTHER_COUNTY, people, resident  # noqa: F401  (fixtures)
from conftest import Live
from ingest_lines import archive, id_number, write
from sqlalchemy import select
from staff.conftest import OTHER_INSTITUTION, StaffWeb, staff_web  # noqa: F401  (a fixture)

from wechat_backend.db.models import Feedback

QUALIFIED, INCOMPLETE = 50, 51
QUESTION = "留言 请问下次随访是哪天？"
ANSWER = "您好，下次随访在本月二十号上午，请带上血压记录本。"


def yanggu(n: int, **over: Any) -> dict[str, Any]:
    return archive(
        n,
        archive_no=f"{OTHER_COUNTY}001101{n:05d}",
        institution_code=OTHER_INSTITUTION,
        id_number=id_number(seq=f"{n:03d}", region=OTHER_COUNTY),
        open_to_resident=False,
        **over,
    )


async def figures(web: StaffWeb) -> dict[str, str]:
    """The institution's row of the statistics the county admin downloads (CSV, the last 30 days)."""
    r = await web.get("/staff/stats.csv")
    assert r.status_code == 200, r.text
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    (row,) = [x for x in rows if x["机构代码"] == OTHER_INSTITUTION]
    return row


async def test_switch_open_follow_bind_read_ask_answer_and_the_figures(
    people: Live,
    staff_web: Any,
    resident: Any,
    tmp_path: Any,
) -> None:
    _, services = people
    lines = [yanggu(QUALIFIED, completeness=92), yanggu(INCOMPLETE, completeness=55)]
    assert (await services.ingest.import_file(write(tmp_path / "yanggu.jsonl", lines))).exit_code == 0
    admin = await staff_web("county", county=OTHER_COUNTY, name="阳谷县管理员")
    nurse = await staff_web("institution", institution=OTHER_INSTITUTION, name="阳谷县护士")
    before = await figures(admin)
    assert before["已开放"] == "0"  # the county's switch is off: nothing counts as opened

    # The county admin turns the switch on: the archives already open upstream now count.
    r = await admin.post("/staff/counties", {"county": OTHER_COUNTY, "opening": "on", "phase": "all"})
    assert r.status_code == 303, r.text
    switched = await figures(admin)
    assert int(switched["已开放"]) >= 1

    # The institution bulk-opens: only the complete, normal archive qualifies.
    preview = await nurse.get("/staff/archives/bulk")
    assert preview.status_code == 200 and 'data-test="bulk-count">1<' in preview.text.replace(" ", "")
    r = await nurse.post("/staff/archives/bulk", {}, follow_redirects=False)
    assert r.status_code == 303, r.text
    job = r.headers["Location"].rsplit("/", 1)[1]
    for _ in range(100):
        progress = (await nurse.get(f"/staff/api/bulk-open/{job}")).json()
        if progress["state"] != "running":
            break
        await asyncio.sleep(0.05)
    assert (progress["state"], progress["opened"]) == ("done", 1)

    # The institution's poster makes its QR code; a resident follows by it, binds and reads.
    assert (await nurse.get(f"/staff/posters/{OTHER_INSTITUTION}.pdf")).status_code == 200
    who = await resident("阳谷县居民", unionid=True)
    scanned = await who.sandbox("POST", f"users/{who.openid}/scan", {"scene": OTHER_INSTITUTION})
    assert "阳谷县某卫生院" in scanned.get("reply", "") or scanned
    a = yanggu(QUALIFIED)
    body = {"name": a["name"], "id_number": a["id_number"], "phone": a["phone"], "relation": "self"}
    started = await who.call("POST", "/api/v1/bind/start", body)
    assert started.status_code == 201, started.text
    code = await who.last_code(a["phone"])
    r = await who.verify(started.json()["bind_id"], code)
    assert r.status_code == 200, r.text
    bound = r.json()
    r = await who.call("GET", f"/api/v1/archives/{bound['id']}")
    assert r.status_code == 200, r.text

    # A question by message goes to the institution's inbox; the nurse answers it.
    reply = await who.sandbox("POST", f"users/{who.openid}/text", {"content": QUESTION})
    assert "已收到您的留言" in reply["reply"]
    async with services.sessions() as s:
        (question,) = (await s.scalars(select(Feedback))).all()
    assert question.institution_code == OTHER_INSTITUTION
    inbox = await nurse.get("/staff/inbox")
    assert question.public_id in inbox.text
    r = await nurse.post(f"/staff/inbox/{question.public_id}", {"reply": ANSWER}, follow_redirects=True)
    assert r.status_code == 200 and "回复已保存" in r.text

    # The answer is on the resident's phone, as a customer-service message.
    messages = await who.sandbox("GET", f"users/{who.openid}/messages")
    assert any(m["kind"] == "custom" and ANSWER in m["text"] for m in messages)

    after = await figures(admin)
    moved = {
        k: int(after[k]) - int(switched[k])
        for k in ("已开放", "已绑定", "查看档案的居民", "收到留言", "已回复", "扫码关注")
    }
    assert moved == {"已开放": 1, "已绑定": 1, "查看档案的居民": 1, "收到留言": 1, "已回复": 1, "扫码关注": 1}
    assert after["建档数"] == switched["建档数"] == before["建档数"]
