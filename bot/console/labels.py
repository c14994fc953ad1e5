"""What the console's pages call things: Chinese for the agents, English beside it (as the
simulator does). Names not listed show as they are (a reason an operator added to a flow)."""

from __future__ import annotations

REASONS: dict[str, str] = {
    "dispute": "争议 Dispute",
    "hardship": "困难 Hardship",
    "abuse": "辱骂 Abuse",
    "broken_promises": "多次失约 Broken promises",
    "plan_request": "申请分期 Plan request",
    "request_human": "要求人工 Asks for a person",
    "sender_doubt": "怀疑诈骗 Doubts the sender",
    "promise_review": "承诺待核 Promise review",
    "refusal": "拒绝还款 Refusal",
    "unclear_reply": "回复不明 Unclear reply",
    "no_response": "未回复 No response",
    "payment_not_found": "未找到还款 Payment not found",
    "delivery_failed": "发送失败 Delivery failed",
    "wrong_number": "号码错误 Wrong number",
    "opted_out": "已退订 Opted out",
}
PRIORITIES: dict[str, str] = {
    "low": "低 Low",
    "normal": "普通 Normal",
    "high": "高 High",
    "urgent": "紧急 Urgent",
}
CASE_STATES: dict[str, str] = {
    "waiting": "待认领 Waiting",
    "claimed": "处理中 Claimed",
    "resolved": "已结案 Resolved",
}
DELIVERY: dict[str, str] = {
    "queued": "排队 Queued",
    "deferred": "延后 Deferred",
    "reserved": "待发 Reserved",
    "sending": "发送中 Sending",
    "sent": "已发出 Sent",
    "delivered": "已送达 Delivered",
    "undelivered": "未送达 Undelivered",
    "failed": "失败 Failed",
    "blocked": "已拦截 Blocked",
    "superseded": "已取代 Superseded",
    "unknown": "状态未知 Unknown",
}
HOLDS: dict[str, str] = {
    "disputed": "争议暂停 Dispute hold",
    "hardship": "困难暂停 Hardship hold",
    "agent": "人工处理中 With a person",
    "paused": "已暂停 Paused",
}
FLAGS: dict[str, str] = {
    "paused": "已暂停 Paused",
    "opted_out": "已退订 Opted out",
    "wrong_number": "号码错误 Wrong number",
    "disputed": "有争议 Disputed",
    "hardship": "困难 Hardship",
}
# A closed case's resolution as the store writes it (returned:<state> | kept_paused | closed).
CLOSED_AS: dict[str, str] = {
    "kept_paused": "保持暂停 kept paused",
    "closed": "结束 closed",
    "returned": "交还机器人 given back",
}
RESOLUTIONS: dict[str, str] = {
    "return": "交还机器人 Give back to the bot",
    "keep_paused": "保持暂停 Keep paused",
    "close": "结束会话 Close",
}


def label(table: dict[str, str], name: str | None) -> str:
    return table.get(name or "", name or "—")


def duration(seconds: int) -> str:
    """3天2小时, 2小时5分, 7分 (negative: how long ago)."""
    s = abs(seconds)
    days, rest = divmod(s, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        text = f"{days}天{hours}小时" if hours else f"{days}天"
    elif hours:
        text = f"{hours}小时{minutes}分" if minutes else f"{hours}小时"
    else:
        text = f"{minutes}分"
    return text


def closed_as(resolution: str | None) -> str:
    """returned:promised → 交还机器人 given back (promised)."""
    kind, _, state = (resolution or "").partition(":")
    text = CLOSED_AS.get(kind, kind or "—")
    return f"{text} ({state})" if state else text
