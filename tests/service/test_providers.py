"""The pure provider layer: signatures, payload parsing and the unsigned-provider guards.

Signatures are recomputed here with hmac/hashlib directly (never through the code under
test), and payloads are the ones documented in shared/reference/providers.md §2.1-2.3.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import parse_qsl

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import MultiDict
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]

from bot.transport import aliyun, auth, generic, tencent, twilio
from bot.transport.inbound import WebhookError, content_id

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
CST = timezone(timedelta(hours=8))


def twilio_sig(key: str, data: str, digest: str = "sha1") -> str:
    return base64.b64encode(hmac.new(key.encode(), data.encode(), digest).digest()).decode()


def generic_sig(secret: str, ts: int, body: bytes) -> str:
    return hmac.new(secret.encode(), str(ts).encode() + b"." + body, hashlib.sha256).hexdigest()


def check(exc: pytest.ExceptionInfo[WebhookError], status: int, *fragments: str) -> None:
    """The error has this HTTP status and its reason names every fragment."""
    assert exc.value.status == status, exc.value.reason
    for fragment in fragments:
        assert fragment in exc.value.reason, (fragment, exc.value.reason)


# --- Twilio --------------------------------------------------------------------------------

DOC_TOKEN = "12345"
DOC_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
DOC_PARAMS = [
    ("CallSid", "CA1234567890ABCDE"),
    ("Caller", "+12349013030"),
    ("Digits", "1234"),
    ("From", "+12349013030"),
    ("To", "+18005551212"),
]

TOKEN = "f3e1c0ffee5ca1ab1e0ddba11deadbeef"
URL = "https://bot.example.cn/webhooks/twilio"
SID = "SM0123456789abcdef0123456789abcdef"
# The field set of providers.md §2.1, with the placeholders filled in and the order kept.
INBOUND_FORM = (
    "ToCountry=CN&ToState=&SmsMessageSid="
    + SID
    + "&NumMedia=0&ToCity=&FromZip=&SmsSid="
    + SID
    + "&FromState=&SmsStatus=received&FromCity=&Body=%E6%98%8E%E5%A4%A9%E8%BF%98&FromCountry=CN"
    "&To=%2B15557654321&MessagingServiceSid=MG0123456789abcdef0123456789abcdef&ToZip="
    "&NumSegments=1&MessageSid=" + SID + "&AccountSid=AC0123456789abcdef0123456789abcdef"
    "&From=%2B8613800138000&ApiVersion=2010-04-01"
)
INBOUND = parse_qsl(INBOUND_FORM, keep_blank_values=True)


def signed_string(url: str, params: list[tuple[str, str]]) -> str:
    return url + "".join(k + v for k, v in sorted(params, key=lambda kv: kv[0]))


def test_twilio_documented_example_signature() -> None:
    # Computed independently: the documented value is what the algorithm yields.
    independent = twilio_sig(DOC_TOKEN, signed_string(DOC_URL, DOC_PARAMS))
    assert independent == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    assert twilio.expected_signature(DOC_TOKEN, DOC_URL, DOC_PARAMS) == independent
    twilio.verify(DOC_TOKEN, DOC_URL, DOC_PARAMS, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=")


def test_twilio_signature_does_not_depend_on_param_order() -> None:
    shuffled = list(reversed(DOC_PARAMS))
    assert twilio.expected_signature(DOC_TOKEN, DOC_URL, shuffled) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="


def test_twilio_verify_accepts_the_documented_inbound_payload() -> None:
    header = twilio_sig(TOKEN, signed_string(URL, INBOUND))
    twilio.verify(TOKEN, URL, INBOUND, header)


def test_twilio_sort_is_case_sensitive_code_point_order() -> None:
    params = [("b", "1"), ("B", "2"), ("a", "3")]
    # Upper-case letters sort before lower-case ones, as Unix sort does.
    assert twilio.expected_signature(TOKEN, URL, params) == twilio_sig(TOKEN, URL + "B2a3b1")


def test_twilio_repeated_keys_are_signed_as_twilios_library_does() -> None:
    # RequestValidator.compute_signature: each name's distinct values, sorted (issue 16, item
    # 17: we used to keep received order, refusing Twilio's signature of such a form).
    params = [("MediaUrl", "z"), ("Body", "x"), ("MediaUrl", "a"), ("MediaUrl", "z")]
    expected = twilio_sig(TOKEN, URL + "BodyxMediaUrlaMediaUrlz")
    assert twilio.expected_signature(TOKEN, URL, params) == expected
    twilio.verify(TOKEN, URL, params, expected)
    sdk = RequestValidator(TOKEN)
    form = MultiDict(params)
    assert sdk.compute_signature(URL, form) == expected
    assert sdk.validate(URL, form, expected)


_NAMES = st.sampled_from(["Body", "MediaUrl", "mediaurl", "From", "B", "a", "Ä", "媒体"])
_VALUES = st.text(alphabet=st.characters(codec="utf-8"), max_size=6)


@settings(max_examples=300)
@given(params=st.lists(st.tuples(_NAMES, _VALUES), max_size=8), sha256=st.booleans())
def test_twilio_signature_equals_the_sdks_for_any_form(
    params: list[tuple[str, str]], sha256: bool
) -> None:
    algorithm = "HMAC_SHA256" if sha256 else "HMAC_SHA1"
    sdk = RequestValidator(TOKEN).compute_signature(URL, MultiDict(params), algorithm)
    assert twilio.expected_signature(TOKEN, URL, params, algorithm=algorithm) == sdk


@pytest.mark.parametrize(
    ("header", "why"),
    [
        (None, "missing"),
        ("", "missing"),
        (twilio_sig("wrong-token", signed_string(URL, INBOUND)), "invalid"),  # wrong token
        ("0/KCTR6DLpKmkAf8muzZqo1nDgQ=", "invalid"),  # a valid signature of another request
        ("AAAAAAAAAAAAAAAAAAAAAAAAAAA=", "invalid"),  # forged
        ("签名", "invalid"),  # non-ASCII must be a 403, not a TypeError from compare_digest
    ],
)
def test_twilio_verify_rejects(header: str | None, why: str) -> None:
    with pytest.raises(WebhookError) as exc:
        twilio.verify(TOKEN, URL, INBOUND, header)
    check(exc, 403, why)


def test_twilio_verify_rejects_tampered_body_and_url() -> None:
    header = twilio_sig(TOKEN, signed_string(URL, INBOUND))
    tampered = [(k, "我不还" if k == "Body" else v) for k, v in INBOUND]
    with pytest.raises(WebhookError) as exc:
        twilio.verify(TOKEN, URL, tampered, header)
    check(exc, 403)
    with pytest.raises(WebhookError) as exc:
        twilio.verify(TOKEN, URL + "?x=1", INBOUND, header)
    check(exc, 403)
    # A trimmed value is a different request: Twilio signs values untrimmed.
    padded = [(k, v + " " if k == "Body" else v) for k, v in INBOUND]
    with pytest.raises(WebhookError):
        twilio.verify(TOKEN, URL, padded, header)


def test_twilio_verify_fails_closed_without_token() -> None:
    header = twilio_sig("", signed_string(URL, INBOUND))  # anyone can compute this
    with pytest.raises(WebhookError) as exc:
        twilio.verify("", URL, INBOUND, header)
    check(exc, 403, "not configured")


@pytest.mark.parametrize(
    ("signed_url", "configured_url"),
    [
        ("https://bot.example.cn:443/webhooks/twilio", "https://bot.example.cn/webhooks/twilio"),
        ("https://bot.example.cn/webhooks/twilio", "https://bot.example.cn:443/webhooks/twilio"),
        ("http://bot.example.cn:80/hook?a=1", "http://bot.example.cn/hook?a=1"),
    ],
)
def test_twilio_verify_tolerates_default_port_spelling(
    signed_url: str, configured_url: str
) -> None:
    header = twilio_sig(TOKEN, signed_string(signed_url, INBOUND))
    twilio.verify(TOKEN, configured_url, INBOUND, header)


def test_twilio_verify_does_not_ignore_other_ports() -> None:
    header = twilio_sig(
        TOKEN, signed_string("https://bot.example.cn:8443/webhooks/twilio", INBOUND)
    )
    with pytest.raises(WebhookError):
        twilio.verify(TOKEN, URL, INBOUND, header)


SHARED_KEY = "shared-key-secret"
SETTINGS = "key=webhooks_sharedkey_01abc,algorithm=HMAC_SHA256"


def test_twilio_shared_key_sha256_variant() -> None:
    header = twilio_sig(SHARED_KEY, signed_string(URL, INBOUND), "sha256")
    assert twilio.expected_signature(SHARED_KEY, URL, INBOUND, algorithm="HMAC_SHA256") == header
    twilio.verify(TOKEN, URL, INBOUND, header, settings_header=SETTINGS, shared_key=SHARED_KEY)


def test_twilio_shared_key_variant_rejections() -> None:
    sha256_header = twilio_sig(SHARED_KEY, signed_string(URL, INBOUND), "sha256")
    with pytest.raises(WebhookError) as exc:  # header present, no key configured
        twilio.verify(TOKEN, URL, INBOUND, sha256_header, settings_header=SETTINGS)
    check(exc, 403, "shared key")
    token_header = twilio_sig(TOKEN, signed_string(URL, INBOUND), "sha256")
    with pytest.raises(WebhookError) as exc:  # signed with the auth token, not the shared key
        twilio.verify(
            TOKEN, URL, INBOUND, token_header, settings_header=SETTINGS, shared_key=SHARED_KEY
        )
    check(exc, 403, "invalid")
    sha1_header = twilio_sig(SHARED_KEY, signed_string(URL, INBOUND))
    with pytest.raises(WebhookError) as exc:  # the header says SHA-256: SHA-1 must not pass
        twilio.verify(
            TOKEN, URL, INBOUND, sha1_header, settings_header=SETTINGS, shared_key=SHARED_KEY
        )
    check(exc, 403, "invalid")
    with pytest.raises(WebhookError) as exc:
        twilio.verify(
            TOKEN,
            URL,
            INBOUND,
            sha256_header,
            settings_header="key=k,algorithm=HMAC_MD5",
            shared_key=SHARED_KEY,
        )
    check(exc, 403, "unsupported", "HMAC_MD5")


def test_twilio_parse_documented_payload() -> None:
    sms = twilio.parse(INBOUND, NOW)
    assert sms.provider == "twilio"
    assert sms.msg_id == SID
    assert sms.phone == "+8613800138000"
    assert sms.to == "+15557654321"
    assert sms.text == "明天还"
    assert sms.sent_at is None  # Twilio sends no time
    assert sms.received_at == NOW


def minimal(**fields: str) -> list[tuple[str, str]]:
    base = {"MessageSid": SID, "From": "+8613800138000", "To": "+15557654321", "Body": "好的"}
    base.update(fields)
    return [(k, v) for k, v in base.items() if v != "<omit>"]


@pytest.mark.parametrize("alias", ["SmsMessageSid", "SmsSid"])
def test_twilio_parse_falls_back_to_deprecated_sid_aliases(alias: str) -> None:
    params = [*minimal(MessageSid="<omit>"), (alias, SID)]
    assert twilio.parse(params, NOW).msg_id == SID


@pytest.mark.parametrize(
    ("sender", "phone"),
    [
        ("+8613800138000", "+8613800138000"),
        ("+86 138 0013 8000", "+8613800138000"),
        ("+86-138-0013-8000", "+8613800138000"),
        ("+12349013030", "+12349013030"),
    ],
)
def test_twilio_parse_normalises_from_to_e164(sender: str, phone: str) -> None:
    assert twilio.parse(minimal(From=sender), NOW).phone == phone


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"MessageSid": "<omit>"}, "MessageSid"),
        ({"MessageSid": ""}, "MessageSid"),
        ({"MessageSid": "SM../../etc"}, "MessageSid"),
        ({"MessageSid": "SM" + "0" * 100}, "MessageSid"),
        ({"From": "<omit>"}, "From"),
        ({"From": ""}, "From"),
        ({"From": "whatsapp:+8613800138000"}, "From"),
        ({"From": "13800138000"}, "From"),  # not E.164: the country would be a guess
        ({"From": "+86 138 0013 80OO"}, "From"),  # letters O
        ({"From": "+12"}, "From"),  # too short
        ({"To": "<omit>"}, "To"),
        ({"Body": "<omit>"}, "Body"),  # e.g. a status callback sent to the wrong URL
        ({"Body": "<omit>", "NumMedia": "0"}, "Body"),
        ({"NumMedia": "one"}, "NumMedia"),
        ({"Body": "还" * 5001}, "Body: String should have at most 5000"),
    ],
)
def test_twilio_parse_rejects(fields: dict[str, str], named: str) -> None:
    with pytest.raises(WebhookError) as exc:
        twilio.parse(minimal(**fields), NOW)
    check(exc, 400, named)


def test_twilio_parse_empty_body_and_media_only() -> None:
    assert twilio.parse(minimal(Body=""), NOW).text == ""
    media = [*minimal(Body="<omit>"), ("NumMedia", "1"), ("MediaUrl0", "https://x/y.jpg")]
    assert twilio.parse(media, NOW).text == ""
    assert twilio.parse([*minimal(Body=""), ("NumMedia", "2")], NOW).text == ""


def test_twilio_parse_needs_an_aware_receive_time() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        twilio.parse(minimal(), datetime(2024, 5, 1, 12, 0))


def test_twilio_ack_is_empty_twiml() -> None:
    root = ET.fromstring(twilio.TWIML_EMPTY.encode())
    assert root.tag == "Response" and len(root) == 0 and not (root.text or "").strip()
    assert twilio.TWIML_CONTENT_TYPE in {"text/xml", "application/xml"}


# --- Alibaba Cloud SmsUp -------------------------------------------------------------------

# providers.md §2.2's sample, with the masked phone number filled in.
ALIYUN_DOC = (
    '[ { "phone_number": "13811112222", "content": "内容", "send_time": "2017-09-01 00:00:00",'
    ' "dest_code": "1234", "sequence_id": "1234567890", "sign_name": "签名" } ]'
).encode()


def aliyun_item(**fields: object) -> dict[str, object]:
    item: dict[str, object] = {
        "phone_number": "13800138000",
        "content": "明天还",
        "send_time": "2024-05-01 20:00:00",
        "dest_code": "01",
        "sequence_id": "42",
    }
    item.update(fields)
    return {k: v for k, v in item.items() if v != "<omit>"}


def test_aliyun_parse_documented_payload() -> None:
    [sms] = aliyun.parse(ALIYUN_DOC, NOW)
    assert sms.provider == "aliyun"
    assert sms.msg_id == "aliyun:1234567890"
    assert sms.phone == "+8613811112222"
    assert sms.to == "1234"
    assert sms.text == "内容"
    # No zone in the payload: Beijing time, i.e. 16:00 UTC the day before.
    assert sms.sent_at == datetime(2017, 8, 31, 16, 0, tzinfo=UTC)
    assert sms.sent_at is not None and sms.sent_at.utcoffset() == timedelta(hours=8)
    assert sms.received_at == NOW


def test_aliyun_masked_phone_is_rejected_not_mangled() -> None:
    with pytest.raises(WebhookError) as exc:
        aliyun.parse(ALIYUN_DOC.replace(b"13811112222", b"1381111****"), NOW)
    check(exc, 400, "item 0", "phone_number")


@pytest.mark.parametrize(
    "raw",
    [
        '"1234567890"',
        "1234567890",
        "1.234567890E9",  # MNS queue mode: a Double
        "1.23456789e+9",
        "1234567890.0",
        '"1.234567890E9"',
        '" 1234567890 "',
        '"001234567890"',
    ],
)
def test_aliyun_sequence_id_forms_share_one_canonical_id(raw: str) -> None:
    body = ALIYUN_DOC.replace(b'"1234567890"', raw.encode())
    [sms] = aliyun.parse(body, NOW)
    assert sms.msg_id == "aliyun:1234567890"


def test_aliyun_sequence_id_keeps_every_digit() -> None:
    body = json.dumps([aliyun_item(sequence_id=9007199254740993)]).encode()  # 2**53 + 1
    assert aliyun.parse(body, NOW)[0].msg_id == "aliyun:9007199254740993"
    body = b'[{"phone_number": "13800138000", "content": "x", "sequence_id": 9.007199254740993E15}]'
    assert aliyun.parse(body, NOW)[0].msg_id == "aliyun:9007199254740993"


@pytest.mark.parametrize(
    "raw",
    ["1.5", "-1", "true", "[]", "{}", '"abc"', '"12a"', '"NaN"', '"1_000"', "1E999999", '"  "'],
)
def test_aliyun_bad_sequence_id(raw: str) -> None:
    body = ALIYUN_DOC.replace(b'"1234567890"', raw.encode())
    with pytest.raises(WebhookError) as exc:
        aliyun.parse(body, NOW)
    check(exc, 400, "item 0: sequence_id")


def test_aliyun_without_sequence_id_falls_back_to_content_hash() -> None:
    body = json.dumps([aliyun_item(sequence_id="<omit>")]).encode()
    [sms] = aliyun.parse(body, NOW)
    assert sms.msg_id == content_id("aliyun", "+8613800138000", "2024-05-01 20:00:00", "明天还")
    # A retry repeats the same id; the same text at another time is another message.
    assert aliyun.parse(body, NOW + timedelta(minutes=5))[0].msg_id == sms.msg_id
    later = json.dumps([aliyun_item(sequence_id="", send_time="2024-05-01 20:01:00")]).encode()
    assert aliyun.parse(later, NOW)[0].msg_id != sms.msg_id
    body = json.dumps([aliyun_item(sequence_id=None, send_time="<omit>")]).encode()
    with pytest.raises(WebhookError) as exc:
        aliyun.parse(body, NOW)
    check(exc, 400, "item 0", "sequence_id", "send_time")


def test_aliyun_single_object_and_batch() -> None:
    one = aliyun.parse(json.dumps(aliyun_item()).encode(), NOW)
    assert [s.msg_id for s in one] == ["aliyun:42"]
    batch = [aliyun_item(sequence_id=str(i), content=f"第{i}条") for i in range(3)]
    parsed = aliyun.parse(json.dumps(batch, ensure_ascii=False).encode(), NOW)
    assert [s.text for s in parsed] == ["第0条", "第1条", "第2条"]
    assert aliyun.parse(b"[]", NOW) == []


@pytest.mark.parametrize(
    ("phone", "e164"),
    [
        ("13800138000", "+8613800138000"),
        ("8613800138000", "+8613800138000"),
        ("+8613800138000", "+8613800138000"),
        ("008613800138000", "+8613800138000"),
        ("138 0013 8000", "+8613800138000"),
        (13800138000, "+8613800138000"),
    ],
)
def test_aliyun_phone_normalised_to_e164(phone: object, e164: str) -> None:
    body = json.dumps([aliyun_item(phone_number=phone)]).encode()
    assert aliyun.parse(body, NOW)[0].phone == e164


def test_aliyun_optional_fields() -> None:
    body = json.dumps([aliyun_item(send_time="<omit>", dest_code="<omit>")]).encode()
    [sms] = aliyun.parse(body, NOW)
    assert sms.sent_at is None and sms.to is None
    assert aliyun.parse(json.dumps([aliyun_item(dest_code=1234)]).encode(), NOW)[0].to == "1234"
    assert aliyun.parse(json.dumps([aliyun_item(content="")]).encode(), NOW)[0].text == ""


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (b"", "not valid JSON"),
        (b"[{", "not valid JSON"),
        (b"\xff\xfe[]", "not UTF-8"),
        (b'[{"phone_number": NaN}]', "not valid JSON"),
        (b'"hello"', "JSON object or array"),
        (b"42", "JSON object or array"),
        (b"null", "JSON object or array"),
    ],
)
def test_aliyun_malformed_body(body: bytes, named: str) -> None:
    with pytest.raises(WebhookError) as exc:
        aliyun.parse(body, NOW)
    check(exc, 400, named)


@pytest.mark.parametrize(
    ("item", "named"),
    [
        ("not an object", "item 2: must be a JSON object"),
        (aliyun_item(phone_number="<omit>"), "item 2: phone_number is missing"),
        (aliyun_item(phone_number=None), "item 2: phone_number is missing"),
        (aliyun_item(phone_number=["138"]), "item 2: phone_number must be a string or an integer"),
        (aliyun_item(phone_number=True), "item 2: phone_number must be"),
        (aliyun_item(phone_number="call me"), "item 2: phone_number"),
        (aliyun_item(content="<omit>"), "item 2: content is missing"),
        (aliyun_item(content=5), "item 2: content must be a string"),
        (aliyun_item(send_time="2024/05/01 20:00"), "item 2: send_time"),
        (aliyun_item(send_time=1714564800), "item 2: send_time must be a string"),
        (aliyun_item(dest_code=[1]), "item 2: dest_code"),
        (aliyun_item(content="还" * 5001), "item 2: content: String should have at most 5000"),
    ],
)
def test_aliyun_bad_item_names_its_index(item: object, named: str) -> None:
    body = json.dumps([aliyun_item(), aliyun_item(sequence_id="43"), item]).encode()
    with pytest.raises(WebhookError) as exc:
        aliyun.parse(body, NOW)
    check(exc, 400, named)


def test_aliyun_acks() -> None:
    assert aliyun.ACK == {"code": 0, "msg": "接收成功"}
    assert aliyun.PROBE_ACK == {"code": 0, "msg": "成功"}
    assert json.loads(json.dumps(aliyun.ACK)) == aliyun.ACK


# --- Tencent Cloud reply callback ----------------------------------------------------------

# providers.md §2.3's sample, with the masked mobile filled in.
TENCENT_DOC = (
    '{ "extend": "扩展码", "mobile": "13800138000", "nationcode": "86", "sign": "短信签名",'
    ' "text": "用户回复的内容", "time": 1457336869 }'
).encode()


def tencent_item(**fields: object) -> dict[str, object]:
    item: dict[str, object] = {
        "extend": "",
        "mobile": "13800138000",
        "nationcode": "86",
        "sign": "某某",
        "text": "好的",
        "time": 1714564800,
    }
    item.update(fields)
    return {k: v for k, v in item.items() if v != "<omit>"}


def test_tencent_parse_documented_payload() -> None:
    [sms] = tencent.parse(TENCENT_DOC, NOW)
    assert sms.provider == "tencent"
    assert sms.phone == "+8613800138000"
    assert sms.text == "用户回复的内容"
    assert sms.to == "扩展码"
    assert sms.sent_at == datetime(2016, 3, 7, 7, 47, 49, tzinfo=UTC)
    assert sms.msg_id == content_id("tencent", "+8613800138000", 1457336869, "用户回复的内容")
    assert sms.received_at == NOW


def test_tencent_id_is_stable_across_retries_and_distinct_per_reply() -> None:
    first = tencent.parse(json.dumps(tencent_item()).encode(), NOW)[0].msg_id
    retry = tencent.parse(json.dumps(tencent_item()).encode(), NOW + timedelta(minutes=1))
    assert retry[0].msg_id == first
    # The time in another spelling is the same moment, hence the same message.
    as_text = tencent.parse(json.dumps(tencent_item(time="1714564800")).encode(), NOW)
    assert as_text[0].msg_id == first
    as_float = tencent.parse(json.dumps(tencent_item(time=1714564800.0)).encode(), NOW)
    assert as_float[0].msg_id == first
    again = tencent.parse(json.dumps(tencent_item(time=1714564860)).encode(), NOW)
    assert again[0].msg_id != first  # the borrower said 好的 twice


@pytest.mark.parametrize(
    ("fields", "phone"),
    [
        ({"nationcode": "<omit>"}, "+8613800138000"),  # default 86
        ({"nationcode": None}, "+8613800138000"),
        ({"nationcode": ""}, "+8613800138000"),
        ({"nationcode": 86}, "+8613800138000"),
        ({"nationcode": "+86"}, "+8613800138000"),
        ({"nationcode": "852", "mobile": "91234567"}, "+85291234567"),
        ({"mobile": 13800138000}, "+8613800138000"),
        ({"mobile": "138-0013-8000"}, "+8613800138000"),
    ],
)
def test_tencent_phone_normalised_with_nationcode(fields: dict[str, object], phone: str) -> None:
    assert tencent.parse(json.dumps(tencent_item(**fields)).encode(), NOW)[0].phone == phone


def test_tencent_array_and_optional_extend() -> None:
    body = json.dumps([tencent_item(), tencent_item(text="TD", extend="<omit>")]).encode()
    parsed = tencent.parse(body, NOW)
    assert [s.text for s in parsed] == ["好的", "TD"]
    assert [s.to for s in parsed] == [None, None]  # "" and absent both mean no extension code


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"mobile": "<omit>"}, "item 1: mobile is missing"),
        ({"mobile": ["1"]}, "item 1: mobile must be"),
        ({"mobile": "1380013800x"}, "item 1: mobile"),
        ({"text": "<omit>"}, "item 1: text is missing"),
        ({"text": 1}, "item 1: text must be a string"),
        ({"text": "还" * 5001}, "item 1: text: String should have at most 5000"),
        ({"time": "<omit>"}, "item 1: time is missing"),
        ({"time": "yesterday"}, "item 1: time must be unix seconds"),
        ({"time": True}, "item 1: time must be unix seconds"),
        ({"time": 1.5}, "item 1: time must be unix seconds"),
        ({"time": -5}, "item 1: time"),
        ({"time": 10**20}, "item 1: time"),
        ({"nationcode": "abc"}, "item 1: nationcode"),
        ({"nationcode": "0"}, "item 1: nationcode"),
        ({"extend": {"a": 1}}, "item 1: extend"),
    ],
)
def test_tencent_bad_item_names_its_index(fields: dict[str, object], named: str) -> None:
    body = json.dumps([tencent_item(), tencent_item(**fields)]).encode()
    with pytest.raises(WebhookError) as exc:
        tencent.parse(body, NOW)
    check(exc, 400, named)


@pytest.mark.parametrize("body", [b"{", b"", b"[1]", b"true", b'{"time": Infinity}'])
def test_tencent_malformed_body(body: bytes) -> None:
    with pytest.raises(WebhookError) as exc:
        tencent.parse(body, NOW)
    check(exc, 400)


def test_tencent_ack() -> None:
    assert tencent.ACK == {"result": 0, "errmsg": "OK"}


# --- Generic signed JSON -------------------------------------------------------------------

SECRET = "generic-secret-0123456789"
GENERIC_BODY = json.dumps(
    {
        "id": "gw-0001",
        "from": "+8613800138000",
        "to": "106900001234",
        "text": "明天还500",
        "sent_at": "2024-05-01T19:59:58+08:00",
    },
    ensure_ascii=False,
).encode()
TS = int(NOW.timestamp())


def test_generic_sign_matches_independent_hmac() -> None:
    assert generic.sign(SECRET, TS, GENERIC_BODY) == generic_sig(SECRET, TS, GENERIC_BODY)


@pytest.mark.parametrize(
    "header",
    [
        generic_sig(SECRET, TS, GENERIC_BODY),
        "sha256=" + generic_sig(SECRET, TS, GENERIC_BODY),
        "SHA256=" + generic_sig(SECRET, TS, GENERIC_BODY).upper(),
    ],
)
def test_generic_verify_accepts(header: str) -> None:
    generic.verify(SECRET, str(TS), header, GENERIC_BODY, NOW)


@pytest.mark.parametrize("delta", [-299, 0, 299])
def test_generic_verify_inside_window(delta: int) -> None:
    ts = TS + delta
    generic.verify(SECRET, str(ts), generic_sig(SECRET, ts, GENERIC_BODY), GENERIC_BODY, NOW)


@pytest.mark.parametrize(
    ("ts_header", "sig_header", "named"),
    [
        (None, generic_sig(SECRET, TS, GENERIC_BODY), "missing X-Smsbot-Timestamp"),
        ("", generic_sig(SECRET, TS, GENERIC_BODY), "missing X-Smsbot-Timestamp"),
        (str(TS), None, "missing X-Smsbot-Signature"),
        (str(TS), "", "missing X-Smsbot-Signature"),
        ("yesterday", generic_sig(SECRET, TS, GENERIC_BODY), "not unix seconds"),
        ("-1", generic_sig(SECRET, -1, GENERIC_BODY), "not unix seconds"),
        (str(TS), generic_sig("wrong-secret", TS, GENERIC_BODY), "invalid"),
        (str(TS), generic_sig(SECRET, TS + 1, GENERIC_BODY), "invalid"),  # timestamp swapped
        (str(TS), generic_sig(SECRET, TS, GENERIC_BODY + b" "), "invalid"),
        (str(TS), hmac.new(SECRET.encode(), GENERIC_BODY, "sha256").hexdigest(), "invalid"),
        (str(TS), "sha1=" + generic_sig(SECRET, TS, GENERIC_BODY), "invalid"),
        (str(TS), "签名", "invalid"),
    ],
)
def test_generic_verify_rejects(ts_header: str | None, sig_header: str | None, named: str) -> None:
    with pytest.raises(WebhookError) as exc:
        generic.verify(SECRET, ts_header, sig_header, GENERIC_BODY, NOW)
    check(exc, 403, named)


@pytest.mark.parametrize(
    ("ts", "named"),
    [
        (TS - 301, "old"),  # replayed after the window
        (TS - 86400, "old"),
        (TS + 301, "future"),
        (999_999_999_999, "future"),  # beyond datetime's range: refused, not an overflow
    ],
)
def test_generic_verify_replay_window(ts: int, named: str) -> None:
    sig = generic_sig(SECRET, ts, GENERIC_BODY)
    with pytest.raises(WebhookError) as exc:
        generic.verify(SECRET, str(ts), sig, GENERIC_BODY, NOW)
    check(exc, 403, named)


def test_generic_verify_custom_window_and_guards() -> None:
    ts = TS - 600
    sig = generic_sig(SECRET, ts, GENERIC_BODY)
    generic.verify(SECRET, str(ts), sig, GENERIC_BODY, NOW, window=timedelta(minutes=15))
    with pytest.raises(WebhookError) as exc:  # unconfigured secret fails closed
        generic.verify("", str(TS), generic_sig("", TS, GENERIC_BODY), GENERIC_BODY, NOW)
    check(exc, 403, "not configured")
    with pytest.raises(ValueError, match="timezone-aware"):
        generic.verify(SECRET, str(TS), sig, GENERIC_BODY, datetime(2024, 5, 1))


def test_generic_parse() -> None:
    sms = generic.parse(GENERIC_BODY, NOW)
    assert sms.provider == "generic"
    assert sms.msg_id == "generic:gw-0001"
    assert sms.phone == "+8613800138000"
    assert sms.to == "106900001234"
    assert sms.text == "明天还500"
    assert sms.sent_at == datetime(2024, 5, 1, 11, 59, 58, tzinfo=UTC)
    assert sms.sent_at is not None and sms.sent_at.utcoffset() == timedelta(hours=8)


def generic_body(**fields: object) -> bytes:
    data = json.loads(GENERIC_BODY)
    data.update(fields)
    return json.dumps({k: v for k, v in data.items() if v != "<omit>"}).encode()


def test_generic_parse_optional_fields_and_normalisation() -> None:
    sms = generic.parse(generic_body(to=None, sent_at="<omit>", **{"from": "13800138000"}), NOW)
    assert sms.to is None and sms.sent_at is None and sms.phone == "+8613800138000"
    zulu = generic.parse(generic_body(sent_at="2024-05-01T11:59:58Z"), NOW)
    assert zulu.sent_at == datetime(2024, 5, 1, 11, 59, 58, tzinfo=UTC)
    assert generic.parse(generic_body(text=""), NOW).text == ""
    assert generic.parse(generic_body(extra="ignored"), NOW).msg_id == "generic:gw-0001"


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (b"{", "not valid JSON"),
        (b"[]", "JSON object"),
        (generic_body(id="<omit>"), "id is missing"),
        (generic_body(id=7), "id must be a string"),
        (generic_body(id=""), "id must be 1 to"),
        (generic_body(id="x" * 129), "id must be 1 to"),
        (generic_body(**{"from": "<omit>"}), "from is missing"),
        (generic_body(**{"from": "not a phone"}), "from"),
        (generic_body(text="<omit>"), "text is missing"),
        (generic_body(text=["a"]), "text must be a string"),
        (generic_body(to=5), "to must be a string"),
        (generic_body(sent_at="2024-05-01T19:59:58"), "no UTC offset"),
        (generic_body(sent_at="tomorrow"), "not an ISO-8601"),
        (generic_body(sent_at=1714564800), "sent_at must be a string"),
    ],
)
def test_generic_parse_rejects(body: bytes, named: str) -> None:
    with pytest.raises(WebhookError) as exc:
        generic.parse(body, NOW)
    check(exc, 400, named)


# --- Path token and IP allow-list ----------------------------------------------------------


def test_path_token() -> None:
    auth.check_path_token(None, None)  # not configured: no restriction
    auth.check_path_token(None, "anything")
    auth.check_path_token("s3cret-路径", "s3cret-路径")


@pytest.mark.parametrize(
    ("expected", "given", "named"),
    [
        ("s3cret", None, "missing"),
        ("s3cret", "", "missing"),
        ("s3cret", "s3cre", "wrong"),
        ("s3cret", "S3CRET", "wrong"),
        ("s3cret", "s3cret ", "wrong"),
        ("", "", "missing"),  # an empty configured token closes, never opens
        ("", "x", "wrong"),
    ],
)
def test_path_token_rejects(expected: str, given: str | None, named: str) -> None:
    with pytest.raises(WebhookError) as exc:
        auth.check_path_token(expected, given)
    check(exc, 403, named)


ALLOWED = ["203.0.113.7", "198.51.100.0/24", "2001:db8::/32", " 10.1.2.3/16 "]


@pytest.mark.parametrize(
    "remote",
    [
        "203.0.113.7",
        "198.51.100.1",
        "198.51.100.255",
        "2001:db8::1",
        "::ffff:198.51.100.9",
        "10.1.200.1",
    ],
)
def test_check_ip_allows(remote: str) -> None:
    auth.check_ip(ALLOWED, remote)


@pytest.mark.parametrize(
    "remote",
    [
        "203.0.113.8",
        "198.51.101.1",
        "2001:db9::1",
        "::ffff:203.0.113.8",
        "10.2.0.1",
        "localhost",
        "",
        None,
    ],
)
def test_check_ip_rejects(remote: str | None) -> None:
    with pytest.raises(WebhookError) as exc:
        auth.check_ip(ALLOWED, remote)
    check(exc, 403)


def test_check_ip_empty_list_is_no_restriction() -> None:
    auth.check_ip([], None)
    auth.check_ip([], "192.0.2.1")


def test_allowlist_config_errors_name_the_entry() -> None:
    with pytest.raises(ValueError, match=re.escape("'10.0.0.300'")):
        auth.parse_allowlist(["10.0.0.1", "10.0.0.300"])
    with pytest.raises(ValueError, match="nonsense"):
        auth.check_ip(["nonsense"], "10.0.0.1")
    assert [str(n) for n in auth.parse_allowlist(["10.0.0.5/24", "::1"])] == [
        "10.0.0.0/24",
        "::1/128",
    ]
