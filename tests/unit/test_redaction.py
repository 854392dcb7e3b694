"""``marketcast.redaction``: what is cut out, that the work is linear (counted, never timed),
and how a long message is cut short without revealing a secret at the cut."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from marketcast.redaction import (
    MASK,
    MAX_MESSAGE_CHARS,
    Redactor,
    Work,
    redact_patterns,
)

MEGABYTE = 1 << 20
#: Characters examined per character of input, at most: one fold, a search per configured
#: spelling, and four rules each reading a character a few times (a find, then a look-back
#: of a few names or a run). The worst inputs here come to about 15. A quadratic scanner
#: exceeds it by orders of magnitude on a megabyte.
WORK_PER_CHAR = 24


def redact(text: str, *, secrets: tuple[str, ...] = (), cut: bool = False) -> tuple[str, int]:
    work = Work()
    return Redactor(secrets)(text, cut=cut, work=work), work.chars


# ---- what is redacted ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # A first parameter with no "?": uvicorn's trace log of a scope, a bare query string.
        ("query_string: b'token=abc'", "query_string: b'token=[redacted]'"),
        ("token=abc&x=1", "token=[redacted]&x=1"),
        (
            "scope={'query_string': b'apikey=k1&x=2'}",
            "scope={'query_string': b'apikey=[redacted]&x=2'}",
        ),
        ('{"message": "token=abc"}', '{"message": "token=[redacted]"}'),
        ("q Api-Key=abc", "q Api-Key=[redacted]"),
        ("?TOKEN=abc", "?TOKEN=[redacted]"),
        ("?token=", "?token=[redacted]"),
        # A value runs to "&", whitespace or a quote; ";" and "#" do not end it, as a server
        # splitting on "&" alone would read them as part of the value.
        ("?key=ab;cd#ef&x=1", "?key=[redacted]&x=1"),
        # A name glued to a word is another name.
        ("monkey=1 x_token=2 token2=3", "monkey=1 x_token=2 token2=3"),
        ("a.b?symbol=A&secret=s&key", "a.b?symbol=A&secret=[redacted]&key"),
        # Authorization, every shape the header and its echoes take.
        ('"authorization": "Bearer abc"', '"authorization": "Bearer [redacted]"'),
        ("AUTHORIZATION=Basic dXNlcg==, x", "AUTHORIZATION=Basic [redacted], x"),
        ("authorization: token", "authorization: [redacted]"),
        ("authorization: Bearer  ;", "authorization: [redacted]  ;"),
        ("authorization: bearerX", "authorization: [redacted]"),
        ("authorization  : x", "authorization  : [redacted]"),
        ("authorization is required", "authorization is required"),
        ("authorization:", "authorization:"),
        ("Authorization: Authorization: Bearer X", "Authorization: [redacted] Bearer [redacted]"),
        ("?token=,Authorization: Bearer X", "?token=[redacted] Bearer [redacted]"),
        # URL passwords.
        ("x amqp+ssl://u:p:w@h", "x amqp+ssl://u:[redacted]@h"),
        ("redis://:pw@h redis://u:pw@h", "redis://:[redacted]@h redis://u:[redacted]@h"),
        ("http://host:8080/path@x", "http://host:8080/path@x"),
        ("1://u:p@h", "1://u:p@h"),
        ("a1.-://u:p@h", "a1.-://u:[redacted]@h"),
        ("redis://u:p", "redis://u:p"),
        # Subprotocol tokens.
        ("token.a.b token.", "token.[redacted] token."),
    ],
)
def test_patterns(text: str, expected: str) -> None:
    assert redact_patterns(text) == expected


def test_a_head_cut_mid_secret_reveals_no_part_of_it() -> None:
    secret = "hunter2-secret"
    for size in range(1, len(secret)):
        shown, _ = redact("x " + secret[:size], secrets=(secret,), cut=True)
        assert shown == f"x {MASK}"
    # The @ was cut off: still a password.
    assert redact("redis://u:pass", cut=True)[0] == f"redis://u:{MASK}"
    assert redact("?token=ab", cut=True)[0] == f"?token={MASK}"
    assert redact("Authorization: Bearer ab", cut=True)[0] == f"Authorization: Bearer {MASK}"


def test_cap_keeps_the_head_and_says_how_much_was_cut() -> None:
    redactor = Redactor()
    short = "j" * MAX_MESSAGE_CHARS
    assert redactor.cap(short) is short
    long = "GET /healthz?" + "j" * 60_000
    capped = redactor.cap(long)
    assert (
        capped == long[:MAX_MESSAGE_CHARS] + f" …[truncated {len(long) - MAX_MESSAGE_CHARS} chars]"
    )
    # Redacting the capped line again (the formatter does) leaves the marker alone.
    assert redactor(redactor.cap("?token=" + "j" * 5000, 10)) == (
        f"?token={MASK} …[truncated 4997 chars]"
    )


def test_cap_redacts_only_the_head() -> None:
    """The work of capping is bounded by the limit, not by the text."""
    work = Work()
    Redactor(["s3cret-value"]).cap("y=" * MEGABYTE, 100, work=work)
    assert work.chars <= WORK_PER_CHAR * 100


# ---- linear work -----------------------------------------------------------------------


def _repeat(piece: str) -> str:
    return (piece * (MEGABYTE // len(piece) + 1))[:MEGABYTE]


ADVERSARIAL: dict[str, Callable[[], str]] = {
    "letters": lambda: "j" * MEGABYTE,
    "letters then a scheme": lambda: "j" * MEGABYTE + "://u:p@h",
    "digits then a scheme": lambda: "1" * MEGABYTE + "://u:p@h",
    "schemes": lambda: _repeat("a://b:"),
    "schemes with passwords": lambda: _repeat("a://b:c"),
    "a scheme, then at signs": lambda: "a://b:" + "@" * MEGABYTE,
    "a scheme, then a long password": lambda: "a://b:" + "c" * MEGABYTE,
    "at signs": lambda: "@" * MEGABYTE,
    "authorization and spaces": lambda: _repeat("authorization  "),
    "authorization, then spaces": lambda: "authorization" + " " * MEGABYTE,
    "authorization headers": lambda: _repeat("Authorization: "),
    "bearers": lambda: _repeat("authorization: bearer "),
    "bearer, then spaces": lambda: "authorization: bearer" + " " * MEGABYTE + ",",
    "authorizations in a value": lambda: _repeat("authorization="),
    "authorizations, quoted": lambda: _repeat("authorization:'"),
    "authorizations, then a space": lambda: _repeat("authorization:") + " x",
    "subprotocol prefixes": lambda: _repeat("token."),
    "subprotocol tokens": lambda: _repeat("token.a "),
    "query tokens": lambda: _repeat("?token="),
    "empty query tokens": lambda: _repeat("?token=&"),
    "equals signs": lambda: "=" * MEGABYTE,
    "name endings": lambda: _repeat("y="),
    "bare names": lambda: _repeat(" key="),
    "mixture": lambda: _repeat("a://b:authorization  token.?token=&@ key=x:"),
    "non-ascii": lambda: _repeat("İ://ü:authorizatİon=TOKEN=\u2003token=é"),
}


@pytest.mark.parametrize("name", ADVERSARIAL)
def test_work_is_linear_on_megabyte_inputs(name: str) -> None:
    text = ADVERSARIAL[name]()
    _, work = redact(text, secrets=("s3cret-value", "tok-one"))
    # At least one look at every character (the counter counts), at most a few.
    assert len(text) <= work <= WORK_PER_CHAR * len(text)
    _, work = redact(text, secrets=("s3cret-value",), cut=True)
    assert work <= WORK_PER_CHAR * len(text)


#: What adversarial text is made of: every anchor and every character that ends a run.
PIECES = st.sampled_from(
    [*"aZ1:/@=&?; \"'.-},\u2003é", "://", "token", "token.", "key", "Authorization", "bearer"]
)


@settings(max_examples=300)
@given(st.lists(PIECES, max_size=30), st.integers(min_value=1, max_value=2000))
def test_work_is_linear_on_any_repeated_pattern(pieces: list[str], times: int) -> None:
    text = "".join(pieces) * times
    _, work = redact(text, secrets=("s3cret-value",))
    assert work <= WORK_PER_CHAR * len(text) + WORK_PER_CHAR


# ---- the same answers as the patterns' specification -------------------------------------

#: The rules as regular expressions (group ``v``: what is masked): fine on short texts (their
#: cost is what the scanner avoids), and the specification the scanner must agree with.
SPEC = (
    re.compile(
        r"(?i)(?<![^?&;\s\"'])(?:api[_-]?key|access[_-]?token|token|key|secret|password|passwd"
        r"|signature)=(?P<v>[^&\s\"']*)"
    ),
    # Every "authorization", also one inside another's value (a lookahead finds them all).
    re.compile(
        r"(?i)(?=authorization[\"']?\s*[:=]\s*[\"']?(?:(?:bearer|basic|apikey|token)\s+)?"
        r"(?P<v>[^\s\"',;}]+))"
    ),
    re.compile(r"(?i)[a-z][a-z0-9+.-]*://[^/\s:@]*:(?P<v>[^@\s/]+)@"),
    re.compile(r"token\.(?P<v>[!#$%&'*+\-.^_`|~0-9A-Za-z]+)"),
)


def specified(text: str) -> str:
    """Every rule's matches in ``text``, one mask per run of overlapping or touching ones."""
    spans = sorted(m.span("v") for pattern in SPEC for m in pattern.finditer(text))
    merged: list[list[int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    for start, end in reversed(merged):
        text = text[:start] + MASK + text[end:]
    return text


SPEC_WORDS = (
    "token TOKEN api key access secret passwd signature authorization Authorization bearer Basic"
)
SPEC_PIECES = st.sampled_from([*"aB1+:/@=&?;# \t\"'.-_},\u2003", "//", *SPEC_WORDS.split()])


@settings(max_examples=2000)
@given(st.lists(SPEC_PIECES, max_size=40))
def test_agrees_with_the_specification(pieces: list[str]) -> None:
    text = "".join(pieces)
    assert redact_patterns(text) == specified(text)


# ---- nothing secret gets through -------------------------------------------------------

SECRET_CHARS = st.characters(
    min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="[]"
) | st.sampled_from(["é", " "])
FILLER = st.lists(
    st.sampled_from([*"abcxyz019 :/@=&?;'\".-_,}", "token", "://", "Authorization: "]),
    max_size=30,
).map("".join)


@settings(max_examples=500)
@given(
    secret=st.text(SECRET_CHARS, min_size=4, max_size=24),
    before=FILLER,
    after=FILLER,
    limit=st.integers(min_value=1, max_value=120),
)
def test_no_configured_secret_survives(secret: str, before: str, after: str, limit: int) -> None:
    # A secret that is part of the mask would be "revealed" by every mask.
    assume(secret not in MASK)
    redactor = Redactor([secret])
    text = f"{before}{secret}{after}{secret}"
    assert secret not in redactor(text)
    if len(text) > limit:  # (else ``cap`` leaves the redacting to its caller)
        head = redactor.cap(text, limit).split(" …[truncated ")[0]
        assert secret not in head
        # Nor a start of it where the line was cut.
        assert not any(head.endswith(secret[:size]) for size in range(1, len(secret)))


#: Where a token-shaped secret sits, and what ends it.
PLACES = [
    ("?token=", "&"),
    ("&apikey=", " "),
    ("token=", "&x=1"),
    ("query_string: b'token=", "'"),
    (" signature=", '"'),
    ("Authorization: Bearer ", " "),
    ('"authorization": "', '"'),
    ("redis://user:", "@host"),
    ("offered token.", ", next"),
]
VALUE = st.text(st.sampled_from("ABCDEFGHJK0123456789-_.~%"), min_size=8, max_size=40).filter(
    lambda v: any(c.isupper() for c in v)
)


@settings(max_examples=500)
@given(
    place=st.sampled_from(PLACES),
    value=VALUE,
    before=FILLER,
    after=FILLER,
    limit=st.integers(min_value=1, max_value=200),
)
def test_no_token_value_survives(
    place: tuple[str, str], value: str, before: str, after: str, limit: int
) -> None:
    opening, closing = place
    if opening.startswith("token="):
        before = ""  # the first parameter of a bare query string
    text = f"{before}{opening}{value}{closing}{after}"
    assert value not in Redactor()(text)
    head = Redactor()(Redactor().cap(text, limit)).split(" …[truncated ")[0]
    # Cut anywhere, no part of the value is shown either.
    assert not any(value[:size] in head for size in range(4, len(value) + 1))
