"""Execution match on hand-checked cases, and a table written from the Spider test-suite's rule.

The Spider test-suite evaluation (Zhong, Yu and Klein 2020, ``test-suite-sql-eval``) compares denotations as
multisets of rows — duplicates count — and compares row order only when the gold query has ORDER BY; here,
columns are compared by position in the gold's order. BIRD's rule compares the *sets* of rows.
"""

from __future__ import annotations

import pytest

from deepretrieval.execution_match import execution_match, values_equal

# (predicted rows, gold rows, gold has ORDER BY, multiset verdict, set verdict), each checked by hand.
SPIDER_TEST_SUITE_TABLE = [
    # identical
    ([(1, "a"), (2, "b")], [(1, "a"), (2, "b")], False, True, True),
    # other row order, gold without ORDER BY: order is free
    ([(2, "b"), (1, "a")], [(1, "a"), (2, "b")], False, True, True),
    # other row order, gold with ORDER BY: order counts
    ([(2, "b"), (1, "a")], [(1, "a"), (2, "b")], True, False, True),
    # same order, gold with ORDER BY
    ([(1, "a"), (2, "b")], [(1, "a"), (2, "b")], True, True, True),
    # a duplicate row missing: a multiset differs, a set does not
    ([(1,)], [(1,), (1,)], False, False, True),
    # an extra duplicate
    ([(1,), (1,), (2,)], [(1,), (2,)], False, False, True),
    # the same duplicates in another order
    ([(2,), (1,), (2,)], [(2,), (2,), (1,)], False, True, True),
    # columns swapped: compared in the gold's order, so they differ
    ([("a", 1), ("b", 2)], [(1, "a"), (2, "b")], False, False, False),
    # an extra column
    ([(1, "a", 0)], [(1, "a")], False, False, False),
    # both empty
    ([], [], False, True, True),
    # empty against one row
    ([], [(None,)], False, False, False),
    # NULL equals NULL
    ([(None, 1)], [(None, 1)], False, True, True),
    # NULL is not 0 and not ''
    ([(0,)], [(None,)], False, False, False),
    ([("",)], [(None,)], False, False, False),
    # an AVG computed another way: equal within the tolerance
    ([(226.40000000000001,)], [(226.4,)], False, True, True),
    ([(1 / 3,)], [(0.333333333,)], False, True, True),
    # a real difference in the second decimal
    ([(226.41,)], [(226.4,)], False, False, False),
    # an integer and a float of the same value (COUNT vs SUM of 1.0)
    ([(3,)], [(3.0,)], False, True, True),
    # text is not a number
    ([("3",)], [(3,)], False, False, False),
    # rows with NULLs sort and compare without error
    ([(None,), (2,), (1,)], [(1,), (None,), (2,)], False, True, True),
    ([(None,), (2,), (1,)], [(1,), (None,), (2,)], True, False, True),
]


@pytest.mark.parametrize(("predicted", "gold", "ordered", "multiset", "set_"), SPIDER_TEST_SUITE_TABLE)
def test_the_spider_test_suite_rule_and_birds(predicted, gold, ordered, multiset, set_):
    assert execution_match(predicted, gold, comparison="multiset", ordered=ordered) is multiset
    assert execution_match(predicted, gold, comparison="set", ordered=ordered) is set_


def test_values_by_hand():
    assert values_equal(None, None)
    assert not values_equal(None, 0)
    assert values_equal(1, 1.0)
    assert not values_equal(2**53 + 1, 2**53)  # integers compared exactly
    assert values_equal(b"\x00", b"\x00")
    assert not values_equal("a", "A")


def test_an_unknown_comparison_is_refused():
    with pytest.raises(ValueError, match="unknown comparison"):
        execution_match([], [], comparison="bag")
