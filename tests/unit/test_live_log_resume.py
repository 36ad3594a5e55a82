"""Where a reconnecting client resumes: the Last-Event-ID it sends back."""

from __future__ import annotations

import pytest

from api.automations.live_log import resume_after
from api.errors import ApiError


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
