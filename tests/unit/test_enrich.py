import json

import pytest

from kcl_app.enrich import classify_editor, enrich, is_revert
from wikitide.events import parse_change


def _change(**overrides: object):
    event = {
        "meta": {"id": "u", "dt": "2021-08-27T13:20:17Z", "domain": "ko.wikipedia.org"},
        "id": 1, "type": "edit", "wiki": "kowiki", "title": "2005년 한국시리즈", "namespace": 0,
        "user": "222.101.92.235", "bot": False, "minor": False, "length": {"old": 8159, "new": 8179},
        "revision": {"old": 30137382, "new": 30137384}, "server_url": "https://ko.wikipedia.org",
        "server_name": "ko.wikipedia.org", "comment": "/* 1차전 */",
    }
    event.update(overrides)
    return parse_change(json.dumps(event))


@pytest.mark.parametrize(
    ("user", "is_bot", "kind"),
    [
        ("222.101.92.235", False, "anonymous"),
        ("2001:db8::1", False, "anonymous"),
        ("~2025-12345-67", False, "temporary"),
        ("ClueBot NG", True, "bot"),
        ("Alice", False, "user"),
        (None, False, "suppressed"),
    ],
)
def test_editor_kinds(user: str | None, is_bot: bool, kind: str) -> None:
    assert classify_editor(user, is_bot) == kind


def test_enrichment_of_an_anonymous_korean_edit() -> None:
    doc = enrich(_change())
    assert doc["editor"] == "anonymous"
    assert doc["project"] == "wikipedia"
    assert doc["language"] == "ko"
    assert doc["namespace_name"] == "Main"
    assert doc["byte_delta"] == 20
    assert doc["page_url"].startswith("https://ko.wikipedia.org/wiki/2005")
    assert doc["is_revert"] is False
    assert doc["synthetic"] is False


def test_shared_wikis_have_no_language() -> None:
    doc = enrich(_change(server_name="commons.wikimedia.org", wiki="commonswiki", namespace=14))
    assert (doc["project"], doc["language"], doc["namespace_name"]) == ("commons", None, "Category")


@pytest.mark.parametrize(
    "comment",
    ["Undid revision 123 by Foo (talk)", "Reverted edits by Foo (talk) to last version by Bar", "rv vandalism",
     "Änderung 123 von Foo rückgängig gemacht"],
)
def test_revert_summaries_are_flagged(comment: str) -> None:
    assert is_revert(comment)


def test_ordinary_summaries_are_not_reverts() -> None:
    assert not is_revert("/* History */ copyedit")
    assert not is_revert("")


def test_missing_optional_fields_never_break_enrichment() -> None:
    bare = parse_change(json.dumps({"meta": {"id": "x", "dt": "2024-01-01T00:00:00Z"}, "type": "log", "wiki": "x"}))
    doc = enrich(bare)
    assert doc["page_url"] is None
    assert doc["namespace_name"] is None
    assert doc["editor"] == "suppressed"
