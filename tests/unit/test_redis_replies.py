"""``redis_pipeline.parse_replies``: the answers a pipeline reads from its connection's stream,
parsed as redis-py gives them, whole replies only; and the commands it sends, packed as
redis-py packs them — pure, no sockets."""

from __future__ import annotations

import pytest
from redis.connection import Connection

from marketcast.redis_pipeline import ReplyError, bulk, pack, pack_after, parse_replies

#: One reply of every kind a pipeline's commands get, and what it parses to.
REPLIES: list[tuple[bytes, object]] = [
    (b":42\r\n", 42),
    (b":-7\r\n", -7),
    (b"+OK\r\n", b"OK"),
    (b"-ERR wrong number of arguments\r\n", ReplyError("ERR wrong number of arguments")),
    (b"$12\r\nhello\r\nworld\r\n", b"hello\r\nworld"),  # a bulk carries its length
    (b"$0\r\n\r\n", b""),
    (b"$-1\r\n", None),
    (b"_\r\n", None),
    (b"*2\r\n$1\r\na\r\n$-1\r\n", [b"a", None]),
    (b"*2\r\n*1\r\n:1\r\n+x\r\n", [[1], b"x"]),
    (b"*0\r\n", []),
    (b"*-1\r\n", None),
]
STREAM = b"".join(data for data, _ in REPLIES)


def test_every_kind_of_reply_parses_as_redis_py_gives_it() -> None:
    replies, used = parse_replies(STREAM)
    assert replies == [value for _, value in REPLIES]
    assert used == len(STREAM)
    error = replies[3]
    assert isinstance(error, ReplyError)


def test_a_reply_cut_anywhere_waits_for_the_rest() -> None:
    """At every cut of the stream, exactly the replies wholly before it are returned, and
    the bytes they took; the rest parses once it has arrived."""
    ends = []
    total = 0
    for data, _ in REPLIES:
        total += len(data)
        ends.append(total)
    for cut in range(len(STREAM) + 1):
        replies, used = parse_replies(STREAM[:cut])
        whole = sum(1 for end in ends if end <= cut)
        assert len(replies) == whole, cut
        assert used == (ends[whole - 1] if whole else 0), cut
        rest, rest_used = parse_replies(STREAM[used:])
        assert replies + rest == [value for _, value in REPLIES]
        assert used + rest_used == len(STREAM)


def test_a_reply_of_another_kind_is_refused_with_what_came() -> None:
    with pytest.raises(ValueError, match=r"expected a RESP2 reply .*got b'%1"):
        parse_replies(b":1\r\n%1\r\n+a\r\n:1\r\n")


@pytest.mark.parametrize(
    "args",
    [[], [b"a"], [b"", b"\r\n", b"x" * 70_000], [b"%d", b"$3\r\n", b"\x00\xff"]],
)
def test_commands_are_packed_as_redis_py_packs_them(args: list[bytes]) -> None:
    expected = b"".join(Connection().pack_command("EVAL", b"return 1", 0, *args))
    head = bulk(b"EVAL") + bulk(b"return 1") + bulk(b"0")
    assert pack_after(head, 3, args) == expected
    assert pack(b"EVAL", b"return 1", b"0", *args) == expected
