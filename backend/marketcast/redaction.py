"""Secrets cut out of log text in time linear in its length, and long messages cut short.

Pure: strings in, strings out. ``marketcast.logs`` (the one log handler) and
``ws.security.RedactSecrets`` (servers built without it) both redact with this module.

Why no regular-expression search: the patterns this replaces (``?token=…``,
``Authorization: …``, ``scheme://user:password@``) were found with ``re.sub``, which tries
every start position and from each scans as far as the pattern can reach. On a 60 KB run of
letters the URL pattern rescanned the same letters 60,000 times — quadratic, 14 s on the event
loop for one access-log line. Here each pattern is found by its fixed anchor (``=``,
``authorization``, ``://``, ``token.``) with ``str.find``, and only the characters around an
anchor are examined:

- backwards, a bounded look-back: a parameter name (at most 12 characters), or a URL scheme
  (never past where the search for this anchor started, so look-backs never overlap);
- forwards, one run of characters that can belong to the value, stopping at the first that
  cannot. A run is measured with ``re.match`` of a single character class at a known
  position — the equivalent of C's ``strspn``: nothing follows the class, so it cannot
  backtrack.

After a match the search resumes past the value (``authorization``: past the anchor, but a
value inside one found already is not scanned again); after a miss, past the anchor. Each
character is thus examined a bounded number of times per rule; the configured secrets are
replaced first (``str.replace``), then the four rules (query parameters, ``Authorization``,
URL passwords, ``token.``) each read the result and their spans are masked in one go.
``Work`` counts the characters examined, so tests pin "linear" with a counter, not a clock.

Names are matched ASCII-case-insensitively (``TOKEN=``, ``authorization``) except the
``token.`` subprotocol prefix, which is case-sensitive as the handshake is.
"""

from __future__ import annotations

import heapq
import logging
import re
import string
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final
from urllib.parse import quote

MASK: Final = "[redacted]"
#: Shorter configured secrets are not searched for: they would blank out ordinary words.
MIN_SECRET_LENGTH: Final = 4
#: The longest log message written whole; longer ones keep this many characters and say how
#: many were cut (``Redactor.cap``).
MAX_MESSAGE_CHARS: Final = 2048

#: Query parameters whose value is a secret, wherever the parameter appears.
_QUERY_NAMES: Final = frozenset(
    {
        "apikey",
        "api_key",
        "api-key",
        "accesstoken",
        "access_token",
        "access-token",
        "token",
        "key",
        "secret",
        "password",
        "passwd",
        "signature",
    }
)
#: The names by their last three characters (all are at least three long): one look at the
#: characters before an ``=`` rules out all but a few.
_NAMES_BY_ENDING: Final = {
    ending: tuple(name for name in _QUERY_NAMES if name.endswith(ending))
    for ending in {name[-3:] for name in _QUERY_NAMES}
}
_NAME_LAST_CHARS: Final = frozenset(name[-1] for name in _QUERY_NAMES)
#: Characters after which a parameter name starts: the query separators, and — for a first
#: parameter with no ``?``, as uvicorn's trace log shows a scope's ``query_string:
#: b'token=abc'`` — quotes and (checked separately) whitespace and the start of the text.
_NAME_OPENERS: Final = frozenset("?&;\"'")
_QUOTES: Final = frozenset("\"'")
_AUTHORIZATION: Final = "authorization"
_AUTH_SCHEMES: Final = ("bearer", "basic", "apikey", "token")
_SUBPROTOCOL: Final = "token."
#: Scheme characters other than letters: a scheme is a letter, then letters or these.
_SCHEME_NON_LETTERS: Final = string.digits + "+.-"
_ASCII_LETTERS: Final = frozenset(string.ascii_letters)
_ASCII_LOWER: Final = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)

# Runs: one character class each, matched at a known position (see the module docstring).
_QUERY_VALUE: Final = re.compile(r"[^&\s\"']*")
_AUTH_VALUE: Final = re.compile(r"[^\s\"',;}]*")
_SPACES: Final = re.compile(r"\s*")
_URL_USER: Final = re.compile(r"[^/\s:@]*")
_URL_PASSWORD: Final = re.compile(r"[^@\s/]*")
#: RFC 9110 ``tchar``: all a subprotocol (so a ``token.<TOKEN>``) may hold.
_TOKEN_VALUE: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]*")


@dataclass(slots=True)
class Work:
    """Characters examined while redacting: what a test compares with the text's length.

    Counted: every character ``str.find`` passed over, every character of a look-back or a
    run, each folding of the text to lower case, and each search for a configured secret
    (the length of the text, per spelling).
    """

    chars: int = 0


class Redactor:
    """Replaces secrets in log text with ``[redacted]``: the configured ``secrets`` (also
    URL-encoded) and everything ``redact_patterns`` finds."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        spellings: set[str] = set()
        for secret in secrets:
            if len(secret) >= MIN_SECRET_LENGTH:
                spellings.update({secret, quote(secret, safe="")})
        #: Longest first, so a secret containing another is replaced whole.
        self._secrets = sorted(spellings, key=len, reverse=True)

    def __call__(self, text: str, *, cut: bool = False, work: Work | None = None) -> str:
        """``text`` redacted; ``cut``: it is the head of a longer text (see ``cap``)."""
        work = Work() if work is None else work
        for secret in self._secrets:
            work.chars += len(text)
            if secret in text:
                work.chars += len(text)
                text = text.replace(secret, MASK)
        if cut:
            text = self._mask_cut_secret(text, work)
        return redact_patterns(text, cut=cut, work=work)

    def cap(self, text: str, limit: int = MAX_MESSAGE_CHARS, *, work: Work | None = None) -> str:
        """``text`` unchanged if it has at most ``limit`` characters (the caller redacts the
        finished line); otherwise its first ``limit`` characters, redacted, and
        `` …[truncated N chars]``.

        Why cut *before* redacting: a message can be as long as what a client sent (uvicorn
        logs the request target whole), and redaction, linear as it is, still costs in
        proportion; cut first and the work per line is bounded by ``limit``, whatever
        arrives. Why that reveals no secret straddling the cut: the head is redacted as
        ``cut``, where whatever runs into its end may go on past it — a parameter value, a
        URL password whose ``@`` was cut off, the start of a configured secret — and is
        masked. Why the marker starts with a space: the caller redacts the finished line
        again, and a value (which ends at whitespace) must stop before the marker instead
        of swallowing it.
        """
        if len(text) <= limit:
            return text
        head = self(text[:limit], cut=True, work=work)
        return f"{head} …[truncated {len(text) - limit} chars]"

    def _mask_cut_secret(self, text: str, work: Work) -> str:
        """Mask a start of a configured secret that ``text`` ends with.

        Quadratic in the secret's length, which is configuration, not input.
        """
        for secret in self._secrets:
            for size in range(min(len(secret) - 1, len(text)), 0, -1):
                work.chars += size
                if text.endswith(secret[:size]):
                    work.chars += len(text)
                    text = text[: len(text) - size] + MASK
                    break
        return text


def redact_patterns(text: str, *, cut: bool = False, work: Work | None = None) -> str:
    """``text`` with every token-shaped secret replaced by ``[redacted]``.

    - the value of a token-like query parameter (``apikey``, ``api_key``, ``api-key``,
      ``access_token``, ``token``, ``key``, ``secret``, ``password``, ``passwd``,
      ``signature``): after ``?``, ``&``, ``;``, a quote, whitespace or at the start of the
      text, up to ``&``, whitespace or a quote;
    - the credentials of an ``Authorization`` header (after ``Bearer``, ``Basic``,
      ``ApiKey`` or ``Token`` when there is one), up to whitespace, a quote, ``,``, ``;``
      or ``}``;
    - the password in ``scheme://user:password@``; with ``cut``, also one that runs into the
      end of ``text`` (its ``@`` was cut off);
    - the token in a ``token.<TOKEN>`` subprotocol.

    Why each rule reads ``text`` as given and their spans are masked together, rather than
    one rule after another on the previous one's output: a mask hides what it covers, and
    a rule that came later could no longer see an anchor inside it. ``?token=,Authorization:
    Bearer X`` would show ``X`` once the query value had swallowed ``Authorization:``.
    """
    work = Work() if work is None else work
    folded = _fold(text, work)
    spans = heapq.merge(
        _query_values(text, folded, work),
        _authorization_values(text, folded, work),
        _url_passwords(text, cut, work),
        _subprotocol_tokens(text, work),
    )
    return _masked(text, spans, work)


def cap_record_message(
    record: logging.LogRecord,
    message: str,
    redactor: Redactor,
    limit: int = MAX_MESSAGE_CHARS,
) -> str:
    """``message`` (``record``'s, formatted) capped at about ``limit`` characters.

    Why arguments are capped first, each at half the limit: uvicorn's access line puts the
    request target in the middle and the status code at the end; capping only the whole
    message would cut the status code off every long request's line.
    """
    if len(message) <= limit:
        return message
    args = record.args
    if isinstance(args, tuple) and any(isinstance(a, str) and len(a) > limit // 2 for a in args):
        capped = tuple(redactor.cap(a, limit // 2) if isinstance(a, str) else a for a in args)
        message = str(record.msg) % capped
    return redactor.cap(message, limit)


def redact_record(record: logging.LogRecord, redactor: Redactor) -> None:
    """Rewrite ``record`` in place so its message is capped and redacted (a handler filter's
    job: before Python 3.12 a filter cannot hand on a replacement record).

    Why the arguments are redacted one by one and kept when that is enough, rather than
    folded into the message: formatters such as uvicorn's ``AccessFormatter`` unpack
    ``record.args``, and fail on a record whose arguments were dropped.
    """
    message = record.getMessage()
    shown = redactor(cap_record_message(record, message, redactor))
    if shown == message:
        return
    args = record.args
    if isinstance(args, tuple):
        half = MAX_MESSAGE_CHARS // 2
        cleaned = tuple(redactor(redactor.cap(a, half)) if isinstance(a, str) else a for a in args)
        try:
            fits = str(record.msg) % cleaned == shown
        except (TypeError, ValueError):  # e.g. ``%c`` given a longer string
            fits = False
        if fits:
            record.args = cleaned
            return
    record.msg, record.args = shown, None


# ---- the passes: each returns the spans to mask, in order, not overlapping -------------

Spans = list[tuple[int, int]]


def _query_values(text: str, folded: str, work: Work) -> Spans:
    spans: Spans = []
    pos = 0
    while (equals := _find(text, "=", pos, work)) >= 0:
        pos = equals + 1
        if _follows_secret_name(text, folded, equals, work):
            end = _run(_QUERY_VALUE, text, pos, work)
            spans.append((pos, end))
            pos = end
    return spans


def _follows_secret_name(text: str, folded: str, equals: int, work: Work) -> bool:
    """Whether a token-like parameter name ends just before ``equals``."""
    work.chars += 1
    if equals < 3 or folded[equals - 1] not in _NAME_LAST_CHARS:
        return False
    work.chars += 2
    for name in _NAMES_BY_ENDING.get(folded[equals - 3 : equals], ()):
        start = equals - len(name)
        work.chars += len(name) + 1
        if (
            start >= 0
            and folded.startswith(name, start)
            and (start == 0 or text[start - 1] in _NAME_OPENERS or text[start - 1].isspace())
        ):
            return True
    return False


def _authorization_values(text: str, folded: str, work: Work) -> Spans:
    """Why the search goes on after each ``authorization``, also one inside a value found
    already: whitespace may separate an ``authorization`` from its value, so the one in
    ``Authorization: Authorization: Bearer X`` is the second, and its ``X`` lies beyond the
    first one's value."""
    spans: Spans = []
    pos = covered = 0
    while (found := _find(folded, _AUTHORIZATION, pos, work)) >= 0:
        pos = found + len(_AUTHORIZATION)
        credentials = _credentials(text, folded, pos, covered, work)
        if credentials is not None:
            spans.append(credentials)
            covered = credentials[1]
    return spans


def _credentials(
    text: str, folded: str, pos: int, covered: int, work: Work
) -> tuple[int, int] | None:
    """Where the value after an ``authorization`` ending at ``pos`` is, if it has one and it
    starts at or after ``covered``: an optional quote, ``:`` or ``=`` between optional
    whitespace, an optional quote, then an optional scheme word and whitespace before the
    value. A value starting before ``covered`` lies in the one found before, and ends where
    it ends: it is not scanned again, so each character is."""
    size = len(text)
    if pos < size and text[pos] in _QUOTES:
        pos += 1
    pos = _run(_SPACES, text, pos, work)
    if pos >= size or text[pos] not in ":=":
        return None
    pos = _run(_SPACES, text, pos + 1, work)
    if pos < size and text[pos] in _QUOTES:
        pos += 1
    for scheme in _AUTH_SCHEMES:
        work.chars += len(scheme)
        if folded.startswith(scheme, pos):
            after = pos + len(scheme)
            start = _run(_SPACES, text, after, work)
            if start > after and start >= covered:
                end = _run(_AUTH_VALUE, text, start, work)
                if end > start:
                    return start, end
            break
    # No scheme, or a scheme word with nothing after it: the word is the value.
    if pos < covered:
        return None
    end = _run(_AUTH_VALUE, text, pos, work)
    return (pos, end) if end > pos else None


def _url_passwords(text: str, cut: bool, work: Work) -> Spans:
    spans: Spans = []
    pos = 0
    while (separator := _find(text, "://", pos, work)) >= 0:
        password = _url_password(text, pos, separator, cut, work)
        if password is None:
            pos = separator + len("://")
        else:
            spans.append(password)
            pos = password[1]
    return spans


def _url_password(
    text: str, floor: int, separator: int, cut: bool, work: Work
) -> tuple[int, int] | None:
    """Where the password of a ``scheme://user:password@`` whose ``://`` is at
    ``separator`` is, if it is one; the scheme is looked for no further back than
    ``floor``."""
    # A scheme is a letter followed by letters, digits, "+", "." or "-": so the characters
    # before "://", once the trailing non-letters are stripped, must end with a letter.
    before = text[floor:separator]
    letters_end = before.rstrip(_SCHEME_NON_LETTERS)
    work.chars += len(before)
    if not letters_end or letters_end[-1] not in _ASCII_LETTERS:
        return None
    user_end = _run(_URL_USER, text, separator + len("://"), work)
    if user_end >= len(text) or text[user_end] != ":":
        return None
    start = user_end + 1
    end = _run(_URL_PASSWORD, text, start, work)
    if end == start:
        return None
    if (end < len(text) and text[end] == "@") or (cut and end == len(text)):
        return start, end
    return None


def _subprotocol_tokens(text: str, work: Work) -> Spans:
    spans: Spans = []
    pos = 0
    while (found := _find(text, _SUBPROTOCOL, pos, work)) >= 0:
        pos = found + len(_SUBPROTOCOL)
        end = _run(_TOKEN_VALUE, text, pos, work)
        if end > pos:
            spans.append((pos, end))
            pos = end
    return spans


# ---- helpers -----------------------------------------------------------------------------


def _fold(text: str, work: Work) -> str:
    """``text`` with ASCII letters in lower case, index for index (``str.lower`` may
    lengthen a non-ASCII text: ``"İ".lower()`` has two characters)."""
    work.chars += len(text)
    return text.lower() if text.isascii() else text.translate(_ASCII_LOWER)


def _find(text: str, needle: str, start: int, work: Work) -> int:
    found = text.find(needle, start)
    work.chars += (found + len(needle) if found >= 0 else len(text)) - start
    return found


def _run(run: re.Pattern[str], text: str, pos: int, work: Work) -> int:
    """The end of the run of ``run``'s characters starting at ``pos``."""
    match = run.match(text, pos)
    end = match.end() if match is not None else pos
    work.chars += end - pos + 1
    return end


def _masked(text: str, spans: Iterable[tuple[int, int]], work: Work) -> str:
    """``text`` with one mask for each run of overlapping or touching ``spans`` (in order
    of their starts); an empty span (``?token=&``) is masked too."""
    pieces: list[str] = []
    kept = 0
    start = end = -1
    for span_start, span_end in spans:
        work.chars += 1
        if span_start <= end:
            end = max(end, span_end)
            continue
        if end >= 0:
            pieces += (text[kept:start], MASK)
            kept = end
        start, end = span_start, span_end
    if end < 0:
        return text
    work.chars += len(text)
    pieces += (text[kept:start], MASK, text[end:])
    return "".join(pieces)
