"""The Fullstory-Signature scheme: known answers, rotation, the replay window, org pinning, bad headers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from datetime import UTC, datetime

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from fullstory_async import FullstoryError, InvalidArgumentError
from fullstory_async.receiving import (
    NoteCreatedData,
    SignatureVerificationError,
    VerificationFailure,
    WebhookEvent,
    sign,
    verify,
)

SECRET = "wh-secret-9Qx7LmPz"
OLD_SECRET = "wh-secret-old-3Kd8"
ORG_ID = "o-1A2B3C-na1"
NOW = 1_700_000_000  # 2023-11-14T22:13:20Z
BODY = b'{"eventName":"note.created","version":1,"data":{"id":"n1","text":"caf\xc3\xa9"}}'


def reference_signature(body: bytes, secret: str, org_id: str, timestamp: str) -> str:
    """Compute the documented scheme with hmac/hashlib/base64 and nothing from the SDK."""
    message = body + b":" + org_id.encode() + b":" + timestamp.encode()
    return base64.b64encode(hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()).decode()


def reference_header(body: bytes = BODY, secret: str = SECRET, org_id: str = ORG_ID, timestamp: object = NOW) -> str:
    """Build a ``Fullstory-Signature`` value from the documented scheme."""
    return f"o:{org_id},t:{timestamp},v:{reference_signature(body, secret, org_id, str(timestamp))}"


def reason_of(body: bytes, header: str | None, **kwargs: object) -> VerificationFailure:
    """Verify, expecting a refusal; return its reason."""
    kwargs.setdefault("now", NOW)
    with pytest.raises(SignatureVerificationError) as info:
        verify(body, header, kwargs.pop("secrets", SECRET), **kwargs)  # type: ignore[arg-type]
    return info.value.reason


# Known answers ---------------------------------------------------------------------------------


def test_known_answer_vector() -> None:
    """A fixed body, secret, org and timestamp give the HMAC-SHA256 the documented scheme defines."""
    body = b'{"eventName":"test","version":1,"data":{}}'
    expected = base64.b64encode(hmac.new(b"s3cr3t", body + b":o-ORG-na1:1700000000", hashlib.sha256).digest()).decode()
    assert sign(body, "s3cr3t", "o-ORG-na1", 1700000000) == f"o:o-ORG-na1,t:1700000000,v:{expected}"


def test_sign_matches_the_reference_scheme() -> None:
    """sign() produces exactly the header the reference computation gives, including non-ASCII secrets."""
    for secret in (SECRET, "clé-ünïcode-秘密"):
        assert sign(BODY, secret, ORG_ID, NOW) == reference_header(BODY, secret)


def test_verify_accepts_a_reference_signature() -> None:
    """A header built independently from the documented scheme verifies and yields the typed event."""
    event = verify(BODY, reference_header(), SECRET, now=NOW)
    assert isinstance(event, WebhookEvent)
    assert event.event_name == "note.created"
    assert event.data == NoteCreatedData(id="n1", text="café")
    assert event.org_id == ORG_ID
    assert event.signed_at == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)


def test_sign_defaults_to_the_current_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a timestamp, sign() uses the current time in whole seconds."""
    monkeypatch.setattr("time.time", lambda: NOW + 0.75)
    assert sign(BODY, SECRET, ORG_ID) == reference_header(timestamp=NOW)


def test_signature_covers_the_raw_bytes_not_the_json_value() -> None:
    """The same JSON value with other whitespace is a different message: only the raw bytes count."""
    reserialised = json.dumps(json.loads(BODY), indent=2).encode()
    assert reason_of(reserialised, reference_header()) is VerificationFailure.MISMATCH


def test_org_and_timestamp_strings_are_signed_exactly_as_sent() -> None:
    """A timestamp with leading zeros is signed as written; dropping the zeros breaks the signature."""
    header = reference_header(timestamp="0001700000000")
    assert verify(BODY, header, SECRET, now=NOW).org_id == ORG_ID
    assert reason_of(BODY, header.replace("t:0001700000000", "t:1700000000")) is VerificationFailure.MISMATCH


def test_whitespace_around_parts_is_tolerated() -> None:
    """Spaces around the comma-separated parts do not matter."""
    signature = reference_signature(BODY, SECRET, ORG_ID, str(NOW))
    assert verify(BODY, f" o:{ORG_ID} , t:{NOW} ,v:{signature} ", SECRET, now=NOW).event_name == "note.created"


def test_parts_may_come_in_any_order_and_unknown_keys_are_ignored() -> None:
    """The parser reads parts by key, so order is free and an added key does not break receivers."""
    signature = reference_signature(BODY, SECRET, ORG_ID, str(NOW))
    assert verify(BODY, f"v:{signature},x:future,t:{NOW},o:{ORG_ID}", SECRET, now=NOW).version == 1


# Mismatches and rotation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "header"),
    [
        pytest.param(BODY.replace(b"n1", b"n2"), reference_header(), id="tampered-body"),
        pytest.param(BODY, reference_header(secret="not-the-secret"), id="wrong-secret"),
        pytest.param(BODY, reference_header().replace(ORG_ID, "o-EVIL-na1"), id="org-swapped"),
        pytest.param(BODY, reference_header().replace(f"t:{NOW}", f"t:{NOW + 1}"), id="timestamp-swapped"),
        pytest.param(BODY + b" ", reference_header(), id="trailing-byte"),
    ],
)
def test_mismatch(body: bytes, header: str) -> None:
    """Any change to the body, org or timestamp, or another secret, is a mismatch."""
    assert reason_of(body, header) is VerificationFailure.MISMATCH


def test_rotation_accepts_any_configured_secret() -> None:
    """While rotating, a delivery signed with the old or the new secret verifies."""
    for secret in (SECRET, OLD_SECRET):
        assert verify(BODY, reference_header(secret=secret), [SECRET, OLD_SECRET], now=NOW).event_name == "note.created"
    assert (
        reason_of(BODY, reference_header(secret="retired"), secrets=(SECRET, OLD_SECRET))
        is VerificationFailure.MISMATCH
    )


def test_every_secret_is_compared(monkeypatch: pytest.MonkeyPatch) -> None:
    """compare_digest runs once per secret even when the first one matches (no early exit)."""
    calls: list[int] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append(1)
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    verify(BODY, reference_header(), [SECRET, OLD_SECRET, "third"], now=NOW)
    assert len(calls) == 3


def test_refusals_never_reveal_the_secret_or_the_expected_signature() -> None:
    """A mismatch message names neither the secret nor the signature that would have matched."""
    wrong = reference_header(secret="attacker-guess")
    with pytest.raises(SignatureVerificationError) as info:
        verify(BODY, wrong, [SECRET, OLD_SECRET], now=NOW)
    text = str(info.value) + repr(info.value) + info.value.detail
    expected = reference_signature(BODY, SECRET, ORG_ID, str(NOW))
    for hidden in (SECRET, OLD_SECRET, expected, expected[:16]):
        assert hidden not in text
    assert isinstance(info.value, FullstoryError)
    assert str(info.value).startswith("mismatch: ")


# Replay window ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("timestamp", "accepted"),
    [
        pytest.param(NOW, True, id="now"),
        pytest.param(NOW - 300, True, id="exactly-tolerance-old"),
        pytest.param(NOW - 301, False, id="just-beyond-old"),
        pytest.param(NOW + 300, True, id="exactly-tolerance-ahead"),
        pytest.param(NOW + 301, False, id="just-beyond-ahead"),
        pytest.param(NOW * 1000, True, id="milliseconds-now"),
        pytest.param(NOW * 1000 - 300_000, True, id="milliseconds-exactly-tolerance"),
        pytest.param(NOW * 1000 - 300_001, False, id="milliseconds-just-beyond"),
        pytest.param(NOW * 1000 + 300_001, False, id="milliseconds-future-beyond"),
        pytest.param(0, False, id="epoch"),
    ],
)
def test_replay_window_edges(timestamp: int, accepted: bool) -> None:
    """The default 300 s window is inclusive, applies both ways, and reads seconds or milliseconds."""
    header = reference_header(timestamp=timestamp)
    if accepted:
        assert verify(BODY, header, SECRET, now=NOW).event_name == "note.created"
    else:
        assert reason_of(BODY, header) is VerificationFailure.STALE_TIMESTAMP


def test_milliseconds_give_the_same_signed_at_as_seconds() -> None:
    """A millisecond timestamp is converted, so signed_at is the same instant."""
    seconds = verify(BODY, reference_header(timestamp=NOW), SECRET, now=NOW)
    millis = verify(BODY, reference_header(timestamp=NOW * 1000 + 250), SECRET, now=NOW)
    assert millis.signed_at is not None
    assert seconds.signed_at is not None
    assert (millis.signed_at - seconds.signed_at).total_seconds() == 0.25


def test_tolerance_is_configurable() -> None:
    """A custom tolerance moves the edge."""
    header = reference_header(timestamp=NOW - 30)
    assert verify(BODY, header, SECRET, tolerance=30, now=NOW).version == 1
    assert reason_of(BODY, header, tolerance=29.5) is VerificationFailure.STALE_TIMESTAMP


def test_tolerance_none_disables_the_replay_check() -> None:
    """With tolerance=None an old (but correctly signed) delivery verifies."""
    assert verify(BODY, reference_header(timestamp=1), SECRET, tolerance=None, now=NOW).signed_at == datetime(
        1970, 1, 1, 0, 0, 1, tzinfo=UTC
    )


def test_stale_message_says_how_far_off_without_secrets() -> None:
    """The stale refusal explains the age and the tolerance."""
    with pytest.raises(
        SignatureVerificationError, match=r"stale_timestamp: timestamp is 3600 s old \(tolerance 300 s\)"
    ):
        verify(BODY, reference_header(timestamp=NOW - 3600), SECRET, now=NOW)


def test_stale_is_only_reported_for_genuine_signatures() -> None:
    """An old forged delivery is a mismatch, so stale_timestamp always means a real but late delivery."""
    assert reason_of(BODY, reference_header(secret="forger", timestamp=NOW - 3600)) is VerificationFailure.MISMATCH


def test_now_defaults_to_the_wall_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without now=, the current time is used for the window."""
    monkeypatch.setattr("time.time", lambda: float(NOW + 10))
    assert verify(BODY, reference_header(), SECRET).version == 1
    monkeypatch.setattr("time.time", lambda: float(NOW + 1000))
    with pytest.raises(SignatureVerificationError):
        verify(BODY, reference_header(), SECRET)


def test_huge_timestamp_without_tolerance_has_no_signed_at() -> None:
    """A 20-digit timestamp that no datetime can hold still verifies with tolerance=None; signed_at is None."""
    event = verify(BODY, reference_header(timestamp="9" * 20), SECRET, tolerance=None, now=NOW)
    assert event.signed_at is None


# Org pinning -----------------------------------------------------------------------------------


def test_org_pinning() -> None:
    """With org_id set, only deliveries signed for that org verify."""
    assert verify(BODY, reference_header(), SECRET, org_id=ORG_ID, now=NOW).org_id == ORG_ID
    other = reference_header(org_id="o-OTHER-eu1")
    assert reason_of(BODY, other, org_id=ORG_ID) is VerificationFailure.UNKNOWN_ORG
    assert verify(BODY, other, SECRET, now=NOW).org_id == "o-OTHER-eu1"


# Malformed and missing headers -----------------------------------------------------------------

GOOD_V = reference_signature(BODY, SECRET, ORG_ID, str(NOW))


@pytest.mark.parametrize("header", [None, "", "   "])
def test_missing_header(header: str | None) -> None:
    """No header, or a blank one, is missing_header."""
    assert reason_of(BODY, header) is VerificationFailure.MISSING_HEADER


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(f"t:{NOW},v:{GOOD_V}", id="no-org"),
        pytest.param(f"o:{ORG_ID},v:{GOOD_V}", id="no-timestamp"),
        pytest.param(f"o:{ORG_ID},t:{NOW}", id="no-signature"),
        pytest.param(f"o:{ORG_ID},t:{NOW},v:", id="empty-signature"),
        pytest.param(f"o:,t:{NOW},v:{GOOD_V}", id="empty-org"),
        pytest.param(f"o:{ORG_ID},t:,v:{GOOD_V}", id="empty-timestamp"),
        pytest.param(f"o:{ORG_ID},t:{NOW}.5,v:{GOOD_V}", id="fractional-timestamp"),
        pytest.param(f"o:{ORG_ID},t:-{NOW},v:{GOOD_V}", id="negative-timestamp"),
        pytest.param(f"o:{ORG_ID},t:١٢٣,v:{GOOD_V}", id="non-ascii-digits"),
        pytest.param(f"o:{ORG_ID},t:{'1' * 21},v:{GOOD_V}", id="21-digit-timestamp"),
        pytest.param(f"o:a:b,t:{NOW},v:{GOOD_V}", id="colon-in-org"),
        pytest.param(f"o:a b,t:{NOW},v:{GOOD_V}", id="space-in-org"),
        pytest.param(f"o:é,t:{NOW},v:{GOOD_V}", id="non-ascii-org"),
        pytest.param(f"o:{ORG_ID},t:{NOW},v:{GOOD_V[:-2]}", id="bad-padding"),
        pytest.param(f"o:{ORG_ID},t:{NOW},v:-_{GOOD_V[2:]}", id="urlsafe-alphabet"),
        pytest.param(f"o:{ORG_ID},t:{NOW},v:{GOOD_V} junk", id="junk-after-signature"),
        pytest.param(f"o:{ORG_ID},t:{NOW},v:{base64.b64encode(b'short').decode()}", id="wrong-length"),
        pytest.param(f"o:{ORG_ID},t:{NOW},v:{hashlib.sha256(b'x').hexdigest()}", id="hex-digest"),
        pytest.param(f"o:{ORG_ID},o:{ORG_ID},t:{NOW},v:{GOOD_V}", id="repeated-org"),
        pytest.param(f"o:{ORG_ID},t:{NOW},v:{GOOD_V},v:{GOOD_V}", id="repeated-signature"),
        pytest.param(f"o={ORG_ID},t={NOW},v={GOOD_V}", id="equals-signs"),
        pytest.param(f"sha256={GOOD_V}", id="other-scheme"),
    ],
)
def test_malformed_header(header: str) -> None:
    """Headers that do not follow o:<org>,t:<digits>,v:<base64 of 32 bytes> are malformed_header."""
    assert reason_of(BODY, header) is VerificationFailure.MALFORMED_HEADER


def test_valid_and_malformed_only_differ_in_form() -> None:
    """The good signature used by the malformed cases does verify when the header is well formed."""
    assert verify(BODY, f"o:{ORG_ID},t:{NOW},v:{GOOD_V}", SECRET, now=NOW).version == 1


# Bad arguments (programming errors, not refusals) ----------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"secrets": ""}, "secrets[0]"),
        ({"secrets": []}, "secrets"),
        ({"secrets": [SECRET, ""]}, "secrets[1]"),
        ({"secrets": b"bytes"}, "secrets"),
        ({"secrets": 42}, "secrets"),
        ({"tolerance": -1}, "tolerance"),
        ({"tolerance": float("nan")}, "tolerance"),
        ({"tolerance": True}, "tolerance"),
        ({"org_id": ""}, "org_id"),
        ({"org_id": 42}, "org_id"),
    ],
)
def test_bad_arguments_raise_invalid_argument(kwargs: dict[str, object], field: str) -> None:
    """Bad secrets or tolerance are InvalidArgumentError (a ValueError) naming the argument."""
    kwargs.setdefault("secrets", SECRET)
    with pytest.raises(InvalidArgumentError) as info:
        verify(BODY, reference_header(), kwargs.pop("secrets"), now=NOW, **kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


def test_a_bytes_header_is_refused_as_an_argument_error() -> None:
    """The header must be a str (raw ASGI header bytes must be decoded first), never a TypeError."""
    with pytest.raises(InvalidArgumentError) as info:
        verify(BODY, reference_header().encode(), SECRET, now=NOW)  # type: ignore[arg-type]
    assert info.value.field == "signature_header"


def test_a_str_body_is_refused_as_an_argument_error() -> None:
    """The body must be the raw bytes: a str (already decoded) is a programming error."""
    with pytest.raises(InvalidArgumentError, match="body"):
        verify(BODY.decode(), reference_header(), SECRET, now=NOW)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ((BODY, "", ORG_ID, NOW), "secret"),
        ((BODY, SECRET, "a:b", NOW), "org_id"),
        ((BODY, SECRET, "", NOW), "org_id"),
        ((BODY, SECRET, ORG_ID, -1), "timestamp"),
        ((BODY, SECRET, ORG_ID, 1.5), "timestamp"),
        ((BODY.decode(), SECRET, ORG_ID, NOW), "body"),
    ],
)
def test_sign_rejects_bad_arguments(args: tuple[object, ...], field: str) -> None:
    """sign() refuses inputs that could not produce a header Fullstory would send."""
    with pytest.raises(InvalidArgumentError) as info:
        sign(*args)  # type: ignore[arg-type]
    assert info.value.field == field


# Properties ------------------------------------------------------------------------------------

header_text = st.one_of(
    st.none(),
    st.text(max_size=200),
    st.builds(
        lambda o, t, v, extra: ",".join([f"o:{o}", f"t:{t}", f"v:{v}", *extra]),
        st.text(max_size=20),
        st.one_of(st.integers(min_value=-(10**22), max_value=10**22).map(str), st.text(max_size=22)),
        st.one_of(st.binary(min_size=0, max_size=40).map(lambda b: base64.b64encode(b).decode()), st.text(max_size=50)),
        st.lists(st.text(max_size=10), max_size=3),
    ),
)


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=300), header=header_text)
@example(body=BODY, header=reference_header())
def test_arbitrary_headers_give_an_event_or_a_verification_error(body: bytes, header: str | None) -> None:
    """Any header string with any body either verifies or raises SignatureVerificationError, nothing else."""
    outcome: WebhookEvent | SignatureVerificationError
    try:
        outcome = verify(body, header, [SECRET, OLD_SECRET], now=NOW)
    except SignatureVerificationError as exc:
        outcome = exc
    if isinstance(outcome, SignatureVerificationError):
        assert outcome.reason in set(VerificationFailure)
        assert SECRET not in str(outcome)
        assert OLD_SECRET not in str(outcome)
    else:
        assert isinstance(outcome, WebhookEvent)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(
    body=st.one_of(
        st.binary(max_size=200),
        json_values.map(lambda v: json.dumps(v).encode()),
        st.builds(
            lambda name, version, data: json.dumps({"eventName": name, "version": version, "data": data}).encode(),
            st.sampled_from(["note.created", "metric.alert", "recording.event.custom", "test", "x.y"]) | st.text(),
            st.integers(min_value=-2, max_value=3) | json_values,
            json_values,
        ),
    ),
    timestamp=st.integers(min_value=0, max_value=10**20 - 1),
)
def test_signed_arbitrary_bodies_give_an_event_or_malformed_body(body: bytes, timestamp: int) -> None:
    """A correctly signed body of any content parses into an event or is refused as malformed_body."""
    header = reference_header(body, timestamp=timestamp)
    outcome: WebhookEvent | SignatureVerificationError
    try:
        outcome = verify(body, header, SECRET, tolerance=None, now=NOW)
    except SignatureVerificationError as exc:
        outcome = exc
    if isinstance(outcome, SignatureVerificationError):
        assert outcome.reason is VerificationFailure.MALFORMED_BODY
    else:
        assert outcome.org_id == ORG_ID


@settings(max_examples=100, deadline=None)
@given(secret=st.text(min_size=1, max_size=40), org=st.from_regex(r"[A-Za-z0-9._-]{1,24}", fullmatch=True))
def test_sign_then_verify_round_trips(secret: str, org: str) -> None:
    """Whatever the secret and org, verify accepts what sign produces, and sign agrees with the reference."""
    header = sign(BODY, secret, org, NOW)
    assert header == reference_header(BODY, secret, org, NOW)
    assert re.fullmatch(r"o:[^,:]+,t:\d+,v:[A-Za-z0-9+/]{43}=", header)
    assert verify(BODY, header, secret, now=NOW).org_id == org
