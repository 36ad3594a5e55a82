"""Label names on pull requests, row by row: what every forge takes, and what is missing."""

from __future__ import annotations

import pytest

from core.forges import ForgeError, check_labels, missing_labels

CHECKED = [
    ([], ()),
    (["deps"], ("deps",)),
    (["deps", "q3", "deps"], ("deps", "q3")),
    (["Deps", "deps"], ("Deps", "deps")),  # GitHub folds case; the name is kept as given
    (["x" * 50], ("x" * 50,)),
    ([f"l{i}" for i in range(20)], tuple(f"l{i}" for i in range(20))),
    ([f"l{i % 20}" for i in range(40)], tuple(f"l{i}" for i in range(20))),  # counted once
]


@pytest.mark.parametrize(("labels", "expected"), CHECKED)
def test_check_labels_keeps_names_in_order_once(labels: list[str], expected: tuple[str]) -> None:
    assert check_labels(labels) == expected


REFUSED = [
    ([""], "pull request labels[0]: must be a non-empty string"),
    (["ok", "  "], "pull request labels[1]: must be a non-empty string"),
    (["x" * 51], "pull request labels[0]: must be one line of at most 50 characters"),
    (["two\nlines"], "pull request labels[0]: must be one line of at most 50 characters"),
    ([f"l{i}" for i in range(21)], "pull request labels: at most 20 labels"),
]


@pytest.mark.parametrize(("labels", "message"), REFUSED)
def test_check_labels_refuses_what_no_forge_takes(labels: list[str], message: str) -> None:
    with pytest.raises(ForgeError) as caught:
        check_labels(labels)
    assert str(caught.value) == message
    assert not caught.value.retryable


MISSING = [
    ([], ["a"], False, ()),
    (["a", "b"], [], False, ("a", "b")),
    (["b", "a", "c"], ["a"], False, ("b", "c")),
    (["a", "a"], [], False, ("a",)),
    (["Deps", "q3"], ["deps"], False, ("Deps", "q3")),
    (["Deps", "q3"], ["deps"], True, ("q3",)),
    (["Q3", "q3"], [], True, ("Q3",)),
]


@pytest.mark.parametrize(("wanted", "present", "casefold", "expected"), MISSING)
def test_missing_labels(
    wanted: list[str], present: list[str], casefold: bool, expected: tuple[str, ...]
) -> None:
    assert missing_labels(wanted, present, casefold=casefold) == expected
