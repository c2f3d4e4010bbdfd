"""P&L aggregation: exact against a hand-coded loop, hierarchy roll-up."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from risk_models.aggregate import aggregate_pnl, rollup


def loop_reference(pnl: np.ndarray, nodes: np.ndarray, n_nodes: int) -> np.ndarray:
    out = np.zeros((n_nodes, pnl.shape[1]))
    for row, node in enumerate(nodes):
        out[node] += pnl[row]
    return out


def test_matches_a_plain_loop_exactly() -> None:
    rng = np.random.default_rng(0)
    pnl = rng.standard_normal((3000, 500)) * 1e6
    nodes = rng.integers(0, 40, 3000)
    got = aggregate_pnl(pnl, nodes, 45)  # nodes 40..44 have no positions
    np.testing.assert_array_equal(got, loop_reference(pnl, nodes, 45))
    assert not got[40:].any()


@given(st.integers(0, 60), st.integers(1, 50), st.integers(1, 12), st.integers(0, 2**32 - 1))
@settings(max_examples=50, deadline=None)
def test_totals_are_preserved(n_positions: int, n_scen: int, n_nodes: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    pnl = rng.standard_normal((n_positions, n_scen))
    nodes = rng.integers(0, n_nodes, n_positions)
    got = aggregate_pnl(pnl, nodes, n_nodes)
    assert got.shape == (n_nodes, n_scen)
    np.testing.assert_allclose(got.sum(axis=0), pnl.sum(axis=0), atol=1e-12 * (n_positions + 1))
    np.testing.assert_array_equal(got, loop_reference(pnl, nodes, n_nodes))


def test_bad_node_index_is_rejected_with_its_row() -> None:
    pnl = np.zeros((3, 4))
    with pytest.raises(ValueError, match=r"node_of_position\[2\] = 7"):
        aggregate_pnl(pnl, np.array([0, 1, 7]), 3)
    with pytest.raises(ValueError, match="shape"):
        aggregate_pnl(pnl, np.array([0, 1]), 3)
    with pytest.raises(ValueError, match="integer"):
        aggregate_pnl(pnl, np.array([0.0, 1.0, 2.0]), 3)


def test_rollup_book_desk_region_firm() -> None:
    rng = np.random.default_rng(1)
    book_pnl = rng.standard_normal((6, 250))
    desk_of_book = np.array([0, 0, 1, 2, 2, 3])
    region_of_desk = np.array([0, 0, 1, 1])
    firm_of_region = np.zeros(2, dtype=int)
    desks, regions, firm = rollup(book_pnl, [desk_of_book, region_of_desk, firm_of_region])
    assert desks.shape == (4, 250) and regions.shape == (2, 250) and firm.shape == (1, 250)
    np.testing.assert_allclose(desks[0], book_pnl[0] + book_pnl[1])
    np.testing.assert_allclose(regions[1], book_pnl[3:].sum(axis=0))
    np.testing.assert_allclose(firm[0], book_pnl.sum(axis=0))
    padded = rollup(book_pnl, [desk_of_book], n_nodes=[6])
    assert padded[0].shape == (6, 250) and not padded[0][4:].any()
