"""``rows_to_record_batch`` (Arrow reads the rows as one struct array) builds exactly the
batch that converting column by column builds (``nerve.envelope.to_record_batch``)."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nerve.collector import rows_to_record_batch
from nerve.envelope import ENVELOPE_FIELDS, ENVELOPE_SCHEMA, to_record_batch

_VALUES = {
    pa.string(): st.text(max_size=8),
    pa.bool_(): st.booleans(),
    pa.timestamp("us", tz="UTC"): st.integers(min_value=-(2**62), max_value=2**62),
}


def _value(field: pa.Field) -> st.SearchStrategy[Any]:
    values = _VALUES[field.type]
    return values if not field.nullable else st.one_of(st.none(), values)


rows = st.lists(st.tuples(*(_value(field) for field in ENVELOPE_SCHEMA)), max_size=20)


@settings(max_examples=100, deadline=None)
@given(rows=rows)
def test_rows_to_record_batch_equals_the_column_wise_batch(rows: list[tuple[Any, ...]]) -> None:
    batch = rows_to_record_batch(rows)
    expected = to_record_batch([dict(zip(ENVELOPE_FIELDS, row, strict=True))  # type: ignore[misc]
                                for row in rows])
    assert batch.schema.equals(ENVELOPE_SCHEMA)
    assert batch.equals(expected)


def test_a_value_of_the_wrong_type_is_refused() -> None:
    row: list[Any] = ["m", "track", "e", None, "u", None, None, None, 1, None, None, 2, "{}",
                      None, "{}", "web", False, None, None]
    assert rows_to_record_batch([tuple(row)]).num_rows == 1
    row[8] = "not a time"
    with pytest.raises((pa.ArrowTypeError, pa.ArrowInvalid)):
        rows_to_record_batch([tuple(row)])
