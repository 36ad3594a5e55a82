"""The live log's wire format: where a reconnecting client resumes (the Last-Event-ID it sends
back), and how lines are written as events."""

from __future__ import annotations

import pytest
from sse_starlette import ServerSentEvent

from api.automations.live_log import encode_lines, resume_after
from api.errors import ApiError
from api.run_stream import LogLine


@pytest.mark.parametrize(
    ("header", "after"),
    [(None, 0), ("", 0), ("  ", 0), ("0", 0), ("17", 17), (" 42 ", 42)],
)
def test_ids_we_sent_resume_after_them(header: str | None, after: int) -> None:
    assert resume_after(header) == after


@pytest.mark.parametrize("header", ["-1", "1.5", "abc", "1e3", "9" * 19, "٣"])
def test_anything_else_is_a_400_naming_the_header(header: str) -> None:
    with pytest.raises(ApiError) as caught:
        resume_after(header)
    assert caught.value.status == 400
    assert caught.value.message.startswith("Last-Event-ID:")


@pytest.mark.parametrize(
    "text",
    ["plain", "", " leading space", "two\nlines", "crlf\r\nand cr\rend", "trailing\n", "ünï"],
)
def test_lines_encode_as_the_sse_library_would(text: str) -> None:
    """One chunk per batch, byte for byte what sse-starlette writes for each event."""
    lines = [LogLine(7, text), LogLine(8, "next")]
    expected = b"".join(ServerSentEvent(data=x.text, id=str(x.seq)).encode() for x in lines)
    assert encode_lines(lines) == expected
