"""Governance of reads: what the reader's masked view can answer honestly.

Masking keeps counts and joins right (equal values, equal masks), but a masked value no
longer compares with the stored one: a filter on it matches nothing, or everything, and
the figure would be wrong without a word (docs/privacy.md#masking-for-readers). So a
query whose filters read a masked value is refused on that view, naming the field: a
metric query (``check_masked_filters``), and a funnel, retention or trend request whose
filters, breakdown or held values do (``check_masked_analysis``).

>>> from nerve.governance import check_masked_filters
>>> check_masked_filters(layer, warehouse.masked_fields, ["orders"],
...                      where="age >= 65")                     # doctest: +SKIP
Traceback (most recent call last):
QueryError: filter 'age >= 65': age reads user.age, ...
"""

from nerve.governance._masked_analysis import check_masked_analysis
from nerve.governance._masked_filters import (
    check_masked_filters,
    masked_fields_of,
    masked_text_of,
)

__all__ = ["check_masked_analysis", "check_masked_filters", "masked_fields_of",
           "masked_text_of"]
