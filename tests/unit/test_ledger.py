from kcl_app.ledger import CellKey, Contribution, delta_after

CELL = CellKey(28_000_000, "*")


def _contributions(*sequences: int) -> list[Contribution]:
    return [Contribution(CELL, s, {"events": 1, "bytes_added": s}) for s in sequences]


def test_a_fresh_cell_counts_everything() -> None:
    delta = delta_after(CELL, _contributions(5, 7, 9), None)
    assert delta is not None
    assert (delta.after, delta.sequence, dict(delta.fields)) == (None, 9, {"events": 3, "bytes_added": 21})


def test_only_records_past_the_mark_are_counted() -> None:
    delta = delta_after(CELL, _contributions(5, 7, 9), 7)
    assert delta is not None
    assert (delta.after, delta.sequence, dict(delta.fields)) == (7, 9, {"events": 1, "bytes_added": 9})


def test_a_cell_that_counted_everything_gets_no_delta() -> None:
    assert delta_after(CELL, _contributions(5, 7, 9), 9) is None
    assert delta_after(CELL, _contributions(5, 7), 100) is None
