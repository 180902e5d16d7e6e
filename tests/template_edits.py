"""Edits of `cloudformation/wikitide.yaml` that the stack-update tests deploy: the template's own text with one
more index on the events table, so that everything else (short tags, comments, parameters) stays as shipped."""

from __future__ import annotations

# Anchors in the events table: its last attribute definition and the end of its by-page index.
EVENTS_LAST_ATTRIBUTE = """        - AttributeName: page
          AttributeType: S
"""
EVENTS_BY_PAGE_INDEX = """        - IndexName: changes-by-page
          KeySchema:
            - AttributeName: page
              KeyType: HASH
            - AttributeName: order
              KeyType: RANGE
          Projection:
            ProjectionType: INCLUDE
            NonKeyAttributes:
              - doc
"""


def with_events_index(template: str, name: str, keys: list[str]) -> str:
    """The template with a keys-only index `name` on the events table, keyed by `keys` (hash, then range),
    all strings."""
    assert template.count(EVENTS_LAST_ATTRIBUTE) == 1 and template.count(EVENTS_BY_PAGE_INDEX) == 1
    definitions = "".join(f"        - AttributeName: {key}\n          AttributeType: S\n" for key in keys)
    schema = "".join(f"            - AttributeName: {key}\n              KeyType: {kind}\n"
                     for key, kind in zip(keys, ("HASH", "RANGE"), strict=False))
    index = (f"        - IndexName: {name}\n          KeySchema:\n{schema}"
             "          Projection:\n            ProjectionType: KEYS_ONLY\n")
    return (template.replace(EVENTS_LAST_ATTRIBUTE, EVENTS_LAST_ATTRIBUTE + definitions)
            .replace(EVENTS_BY_PAGE_INDEX, EVENTS_BY_PAGE_INDEX + index))
