"""Words the template checks look for (compliance.md §1.4 and CN-3P-01).

Kept as data in one place so compliance can review it without reading code. Matching is on the
template text with spaces removed; variables are checked separately by what they reveal.
"""

from __future__ import annotations

# Never sent, in any template (hard-block lists A–F).
HARD_BLOCK: dict[str, tuple[str, ...]] = {
    "violence or threat": (
        "上门找你", "带人上门", "去你家", "去你单位", "堵你", "找人收拾", "让你好看",
        "你给我等着", "小心点", "后果自负", "弄死", "打断", "卸你", "泼油漆", "砸",
        "你家人的安全", "你孩子在哪",
    ),
    "false or exaggerated consequence": (
        "逮捕", "拘留", "坐牢", "已立案", "公安已介入", "警方已受理", "黑名单", "全网曝光",
        "征信黑户", "永久不能贷款", "株连", "子女不能", "不能坐高铁", "冻结你", "强制执行",
        "法院今天上门", "诈骗罪", "涉嫌诈骗", "恶意透支",
    ),
    "impersonating authorities": (
        "公安局", "派出所", "警官", "民警", "刑侦", "检察院", "检察官", "法官", "执行局",
        "司法局", "司法所", "银保监会", "金融监管总局", "人民银行", "政府部门", "传票",
        "逮捕令", "协查通知", "司法催收", "法务部执行",
    ),
    "insult": (
        "老赖", "骗子", "无赖", "不要脸", "无耻", "人渣", "垃圾", "废物", "败类", "去死",
        "死全家", "丢人现眼",
    ),
    "exposing privacy or third-party pressure": (
        "通讯录", "所有联系人", "告诉你单位", "告诉你领导", "告诉你同事", "告诉你家人",
        "朋友圈", "群里曝光", "家族群", "张贴", "贴到小区", "贴到公司", "公布你的照片",
    ),
    "new debt, extra fees or private transfers": (
        "借钱来还", "找朋友借", "去网贷", "以贷养贷", "套现", "借新还旧", "催收费", "上门费",
        "个人账户", "加微信", "加我QQ", "私下处理",
    ),
}  # fmt: skip

# Allowed only in wording compliance approved (`compliance_approved: true`), never improvised.
SOFT_RISK: tuple[str, ...] = (
    "起诉", "诉讼", "法院", "律师", "征信", "法律责任", "仲裁",
)  # fmt: skip

# Any of these makes a message "debt content": it must not reach an opted-out or wrong number.
DEBT_WORDS: tuple[str, ...] = (
    "逾期", "欠款", "欠费", "还款", "借款", "贷款", "催收", "账单", "应还", "待还", "结清",
    "本金", "利息", "债", "额度", "分期",
)  # fmt: skip


def _squash(text: str) -> str:
    return "".join(text.split())


def hard_block_hits(text: str) -> list[tuple[str, str]]:
    t = _squash(text)
    return [(cat, w) for cat, words in HARD_BLOCK.items() for w in words if w in t]


def soft_risk_hits(text: str) -> list[str]:
    t = _squash(text)
    return [w for w in SOFT_RISK if w in t]


def debt_word_hits(text: str) -> list[str]:
    t = _squash(text)
    return [w for w in DEBT_WORDS if w in t]
