"""Component (Euler) and incremental VaR/ES: additivity and independent references."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from risk_models.attribution import component_es, component_var, incremental_es, incremental_var
from risk_models.var import historical_es, historical_var, tail_count

PROPERTY = settings(max_examples=60, deadline=None)

position_matrices = st.integers(1, 8).flatmap(
    lambda p: hnp.arrays(
        np.float64,
        st.tuples(st.just(p), st.integers(1, 300)),
        elements=st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=False),
    )
)
confidences = st.sampled_from([0.9, 0.95, 0.975, 0.99])


def book(n_positions: int = 12, n_scen: int = 500, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    loadings = rng.standard_normal((n_positions, 3))
    factors = rng.standard_t(4, size=(3, n_scen))
    return loadings @ factors * 1e4 + rng.standard_normal((n_positions, n_scen)) * 1e3


@given(position_matrices, confidences)
@PROPERTY
def test_component_var_sums_to_total(pnl: np.ndarray, confidence: float) -> None:
    total = historical_var(pnl.sum(axis=0), confidence)
    tol = 1e-9 * (np.abs(pnl).sum() + 1.0)
    assert component_var(pnl, confidence).sum() == pytest.approx(total, abs=tol)
    assert component_var(pnl, confidence, neighbours=3).sum() == pytest.approx(total, abs=tol)


@given(position_matrices, confidences)
@PROPERTY
def test_component_es_sums_to_total(pnl: np.ndarray, confidence: float) -> None:
    total = historical_es(pnl.sum(axis=0), confidence)
    tol = 1e-9 * (np.abs(pnl).sum() + 1.0)
    assert component_es(pnl, confidence).sum() == pytest.approx(total, abs=tol)


def test_component_var_is_each_position_in_the_var_scenario() -> None:
    pnl = book()
    total = pnl.sum(axis=0)
    var_scenario = np.argsort(total)[tail_count(500, 0.99) - 1]  # independent: full sort
    np.testing.assert_array_equal(component_var(pnl, 0.99), -pnl[:, var_scenario])
    tail = np.argsort(total)[: tail_count(500, 0.975)]
    np.testing.assert_allclose(component_es(pnl, 0.975), -pnl[:, tail].mean(axis=1))


def test_smoothed_component_var_is_additive_and_less_noisy() -> None:
    pnl = book(seed=3)
    exact = component_var(pnl, 0.99)
    smooth = component_var(pnl, 0.99, neighbours=2)
    assert smooth.sum() == pytest.approx(historical_var(pnl.sum(axis=0), 0.99), rel=1e-12)
    assert not np.allclose(exact, smooth)
    np.testing.assert_array_equal(component_var(pnl, 0.99, neighbours=0), exact)
    with pytest.raises(ValueError):
        component_var(pnl, 0.99, neighbours=-1)


def test_single_position_gets_the_whole_var() -> None:
    pnl = book(1)
    assert component_var(pnl)[0] == historical_var(pnl[0])
    assert incremental_var(pnl)[0] == historical_var(pnl[0])
    assert incremental_es(pnl)[0] == pytest.approx(historical_es(pnl[0]))


def test_incremental_var_matches_a_loop_reference() -> None:
    pnl = book(20, seed=5)
    total = pnl.sum(axis=0)
    expected = [historical_var(total) - historical_var(total - pnl[i]) for i in range(pnl.shape[0])]
    np.testing.assert_allclose(incremental_var(pnl, chunk_rows=7), expected, rtol=1e-12)
    expected_es = [
        historical_es(total) - historical_es(total - pnl[i]) for i in range(pnl.shape[0])
    ]
    np.testing.assert_allclose(incremental_es(pnl, chunk_rows=3), expected_es, rtol=1e-12)


def test_hedge_has_negative_contribution() -> None:
    rng = np.random.default_rng(9)
    exposure = rng.standard_normal(500) * 1e5
    pnl = np.stack([exposure, -0.5 * exposure])
    assert component_var(pnl)[1] < 0 < component_var(pnl)[0]
    assert incremental_var(pnl)[1] < 0


def test_rejects_non_matrix_input() -> None:
    with pytest.raises(ValueError, match=r"\(P, S\)"):
        component_var(np.zeros(10))
