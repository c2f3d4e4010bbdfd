"""VaR/ES methods: closed forms, an independent sort-based reference, invariances."""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats

from risk_models import var
from risk_models.var import (
    filtered_historical_pnl,
    filtered_historical_var,
    historical_es,
    historical_var,
    monte_carlo,
    monte_carlo_es,
    monte_carlo_var,
    nearest_psd,
    parametric_es,
    parametric_var,
    scale_to_horizon,
    tail_count,
)

PROPERTY = settings(max_examples=60, deadline=None)


# ------------------------------------------------------------- independent reference


def reference_k(n: int, confidence: float) -> int:
    """k = ceil(n (1 - c)) in exact decimal arithmetic, at least 1."""
    return max(1, math.ceil(Decimal(n) * (1 - Decimal(str(confidence)))))


def reference_var(pnl: np.ndarray, confidence: float) -> float:
    losses = np.sort(-pnl)[::-1]  # largest loss first
    return float(losses[reference_k(pnl.size, confidence) - 1])


def reference_es(pnl: np.ndarray, confidence: float) -> float:
    losses = np.sort(-pnl)[::-1]
    return float(np.mean(losses[: reference_k(pnl.size, confidence)]))


scenario_vectors = hnp.arrays(
    np.float64,
    st.integers(1, 300),
    elements=st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False, allow_subnormal=False),
)
confidences = st.sampled_from([0.9, 0.95, 0.975, 0.99, 0.995])


# ------------------------------------------------------------------------- tail count


@pytest.mark.parametrize(
    ("n", "confidence", "k"),
    [
        (500, 0.99, 5),
        (500, 0.975, 13),
        (250, 0.99, 3),
        (100, 0.99, 1),
        (1, 0.99, 1),
        (1000, 0.999, 1),
        (10, 0.9, 1),
        (1_000_000, 0.99, 10_000),
    ],
)
def test_tail_count_matches_convention(n: int, confidence: float, k: int) -> None:
    assert tail_count(n, confidence) == k == reference_k(n, confidence)


@given(st.integers(1, 100_000), st.floats(0.5, 0.9999))
@PROPERTY
def test_tail_count_matches_exact_decimal(n: int, confidence: float) -> None:
    assert tail_count(n, confidence) == reference_k(n, confidence)


@pytest.mark.parametrize("confidence", [0.0, 1.0, -0.5, 99.0])
def test_bad_confidence_is_rejected(confidence: float) -> None:
    with pytest.raises(ValueError, match="confidence"):
        historical_var(np.arange(10.0), confidence)


# ------------------------------------------------------------------ historical VaR/ES


def test_historical_var_is_fifth_worst_of_500() -> None:
    pnl = np.random.default_rng(7).permutation(np.arange(1.0, 501.0)) - 250.0
    # losses 249, 248, ..., the 5th largest is 245
    assert historical_var(pnl, 0.99) == 245.0
    assert historical_es(pnl, 0.99) == pytest.approx(np.mean([249, 248, 247, 246, 245]))


def test_historical_matches_sort_reference_and_vectorises() -> None:
    rng = np.random.default_rng(1)
    pnl = rng.standard_t(4, size=(3, 4, 777)) * 1e5
    for c in (0.95, 0.975, 0.99):
        got_var = historical_var(pnl, c)
        got_es = historical_es(pnl, c)
        assert isinstance(got_var, np.ndarray) and got_var.shape == (3, 4)
        for idx in np.ndindex(3, 4):
            assert got_var[idx] == reference_var(pnl[idx], c)
            assert got_es[idx] == pytest.approx(reference_es(pnl[idx], c), rel=1e-12)
    assert isinstance(historical_var(pnl[0, 0]), float)
    assert isinstance(historical_es(pnl[0, 0]), float)


def test_normal_closed_form_on_large_sample() -> None:
    sigma = 2.5e6
    pnl = np.random.default_rng(11).normal(0.0, sigma, size=1_000_000)
    z99, z975 = stats.norm.ppf(0.99), stats.norm.ppf(0.975)
    assert historical_var(pnl, 0.99) == pytest.approx(sigma * z99, rel=0.01)
    assert historical_es(pnl, 0.975) == pytest.approx(
        sigma * stats.norm.pdf(z975) / 0.025, rel=0.01
    )


def test_stable_at_a_million_scenarios_with_large_offset() -> None:
    rng = np.random.default_rng(3)
    pnl = 1e9 + rng.normal(0.0, 1e3, size=1_000_000)
    assert historical_var(pnl, 0.99) == reference_var(pnl, 0.99)
    assert historical_es(pnl, 0.975) == pytest.approx(reference_es(pnl, 0.975), rel=1e-13)


@pytest.mark.parametrize("n", [1, 2, 500, 1_000_000])
def test_all_zero_pnl_gives_positive_zero(n: int) -> None:
    for value in (historical_var(np.zeros(n)), historical_es(np.zeros(n))):
        assert value == 0.0 and not math.copysign(1.0, value) < 0
    rows = historical_var(np.zeros((3, n)))
    assert isinstance(rows, np.ndarray)
    assert not np.signbit(rows).any()


@pytest.mark.parametrize("constant", [0.1, -7.3, 1e12, -1e-12])
def test_constant_pnl_gives_minus_constant(constant: float) -> None:
    pnl = np.full(500, constant)
    assert historical_var(pnl) == -constant  # a gain shows as a negative VaR
    assert historical_es(pnl) == -constant
    assert parametric_var(pnl) == pytest.approx(0.0, abs=1e-9 * abs(constant))


def test_non_finite_pnl_is_rejected_with_location() -> None:
    pnl = np.zeros((2, 10))
    pnl[1, 4] = np.nan
    with pytest.raises(ValueError, match=r"\(1, 4\)"):
        historical_var(pnl)
    with pytest.raises(ValueError, match="n_scenarios"):
        historical_es(np.zeros((3, 0)))


# ------------------------------------------------------------------------ invariances


@given(scenario_vectors, confidences, st.floats(0.01, 100.0))
@PROPERTY
def test_positive_homogeneity(pnl: np.ndarray, confidence: float, scale: float) -> None:
    # a monotone map preserves order statistics exactly, so VaR is exactly homogeneous
    assert historical_var(scale * pnl, confidence) == scale * historical_var(pnl, confidence)
    tol = 1e-9 * scale * (np.abs(pnl).max() + 1.0)
    assert historical_es(scale * pnl, confidence) == pytest.approx(
        scale * historical_es(pnl, confidence), abs=tol
    )


@given(scenario_vectors, confidences, st.floats(-1e6, 1e6))
@PROPERTY
def test_translation(pnl: np.ndarray, confidence: float, cash: float) -> None:
    assert historical_var(pnl + cash, confidence) == historical_var(pnl, confidence) - cash
    tol = 1e-9 * (np.abs(pnl).max() + abs(cash) + 1.0)
    assert historical_es(pnl + cash, confidence) == pytest.approx(
        historical_es(pnl, confidence) - cash, abs=tol
    )


@given(scenario_vectors, confidences, st.randoms(use_true_random=False))
@PROPERTY
def test_permutation_of_scenarios(pnl: np.ndarray, confidence: float, rnd) -> None:
    order = list(range(pnl.size))
    rnd.shuffle(order)
    assert historical_var(pnl[order], confidence) == historical_var(pnl, confidence)
    assert historical_es(pnl[order], confidence) == pytest.approx(
        historical_es(pnl, confidence), abs=1e-9 * (np.abs(pnl).max() + 1.0)
    )


@given(scenario_vectors, confidences)
@PROPERTY
def test_es_at_least_var_and_matches_reference(pnl: np.ndarray, confidence: float) -> None:
    assert historical_es(pnl, confidence) >= historical_var(pnl, confidence)
    assert historical_var(pnl, confidence) == reference_var(pnl, confidence)
    assert historical_es(pnl, confidence) == pytest.approx(
        reference_es(pnl, confidence), abs=1e-9 * (np.abs(pnl).max() + 1.0)
    )


@given(
    st.integers(2, 6).flatmap(
        lambda p: hnp.arrays(
            np.float64,
            st.tuples(st.just(p), st.integers(1, 200)),
            elements=st.floats(-1e4, 1e4, allow_nan=False, allow_subnormal=False),
        )
    ),
    confidences,
)
@PROPERTY
def test_es_is_subadditive_on_random_portfolios(pnl: np.ndarray, confidence: float) -> None:
    total = historical_es(pnl.sum(axis=0), confidence)
    stand_alone = np.sum(historical_es(pnl, confidence))
    assert total <= stand_alone + 1e-9 * (np.abs(pnl).sum() + 1.0)


def test_var_is_not_subadditive_counterexample() -> None:
    # two independent 4%-default bonds: each has zero 95% VaR, the pair does not
    n = 10_000
    a = np.zeros(n)
    b = np.zeros(n)
    a[:400] = -100.0
    b[400:800] = -100.0
    assert historical_var(a, 0.95) == 0.0 == historical_var(b, 0.95)
    assert historical_var(a + b, 0.95) == 100.0
    assert historical_es(a + b, 0.95) <= historical_es(a, 0.95) + historical_es(b, 0.95)


# ------------------------------------------------------------------------ parametric


def test_parametric_from_pnl_is_exact_normal_formula() -> None:
    pnl = np.random.default_rng(5).normal(10.0, 3.0, size=(2, 250))
    sd = pnl.std(axis=1, ddof=1)
    mu = pnl.mean(axis=1)
    z = stats.norm.ppf(0.99)
    np.testing.assert_allclose(parametric_var(pnl, confidence=0.99), z * sd, rtol=1e-14)
    np.testing.assert_allclose(parametric_var(pnl, mean=True), z * sd - mu, rtol=1e-13)
    z = stats.norm.ppf(0.975)
    np.testing.assert_allclose(
        parametric_es(pnl, confidence=0.975), sd * stats.norm.pdf(z) / 0.025, rtol=1e-13
    )
    assert isinstance(parametric_var(pnl[0]), float)


def test_parametric_from_exposures_and_covariance() -> None:
    vols = np.array([0.01, 0.02, 0.015])
    corr = np.array([[1.0, 0.3, -0.2], [0.3, 1.0, 0.5], [-0.2, 0.5, 1.0]])
    cov = corr * np.outer(vols, vols)
    e = np.array([1e6, -2e6, 5e5])
    sigma = math.sqrt(e @ cov @ e)
    assert parametric_var(e, cov, 0.99) == pytest.approx(sigma * stats.norm.ppf(0.99), rel=1e-14)
    assert parametric_es(e, cov, 0.975) == pytest.approx(
        sigma * stats.norm.pdf(stats.norm.ppf(0.975)) / 0.025, rel=1e-14
    )
    # vectorised over leading axes of exposures
    rows = parametric_var(np.stack([e, 2 * e]), cov, 0.99)
    np.testing.assert_allclose(rows, np.array([1.0, 2.0]) * rows[0])
    # a zero gamma is delta-normal
    assert parametric_var(e, cov, 0.99, gamma=np.zeros((3, 3))) == pytest.approx(
        parametric_var(e, cov, 0.99), rel=1e-14
    )
    with pytest.raises(ValueError, match="covariance"):
        parametric_var(e, gamma=np.eye(3))
    with pytest.raises(ValueError, match="shape"):
        parametric_var(e[:2], cov)


def test_delta_gamma_moments_match_simulation() -> None:
    rng = np.random.default_rng(21)
    cov = np.array([[0.04, 0.01], [0.01, 0.09]])
    e = np.array([1.0, -0.5])
    g = np.array([[2.0, 0.5], [0.5, -1.0]])
    x = rng.multivariate_normal(np.zeros(2), cov, size=2_000_000)
    pnl = x @ e + 0.5 * np.einsum("sf,fg,sg->s", x, g, x)
    mu, sd, skew, kurt = var._delta_gamma_moments(e, cov, g)
    assert float(mu) == pytest.approx(pnl.mean(), abs=3e-3)
    assert float(sd) == pytest.approx(pnl.std(), rel=3e-3)
    assert float(skew) == pytest.approx(stats.skew(pnl), abs=0.02)
    assert float(kurt) == pytest.approx(stats.kurtosis(pnl), abs=0.1)


def test_delta_gamma_var_close_to_monte_carlo_for_short_option_like_book() -> None:
    cov = np.array([[0.0004]])
    e = np.array([50.0])
    g = np.array([[-4000.0]])  # short gamma: fatter left tail than delta-normal
    cf = parametric_var(e, cov, 0.99, gamma=g)
    mc = monte_carlo_var(e, cov, 0.99, n_sims=400_000, seed=2, gamma=g)
    assert cf == pytest.approx(mc, rel=0.05)
    assert cf > parametric_var(e, cov, 0.99)


# ------------------------------------------------------------------------ Monte Carlo


def test_monte_carlo_matches_parametric_for_linear_book() -> None:
    cov = np.array([[0.0004, 0.0001], [0.0001, 0.0009]])
    e = np.array([1e6, 5e5])
    assert monte_carlo_var(e, cov, 0.99, n_sims=200_000) == pytest.approx(
        parametric_var(e, cov, 0.99), rel=0.02
    )
    assert monte_carlo_es(e, cov, 0.975, n_sims=200_000) == pytest.approx(
        parametric_es(e, cov, 0.975), rel=0.02
    )


def test_monte_carlo_is_seeded_and_accepts_a_pnl_function() -> None:
    cov = np.diag([0.01, 0.04])
    e = np.array([3.0, -1.0])
    first = monte_carlo(e, cov, n_sims=5_000, seed=9)
    again = monte_carlo(e, cov, n_sims=5_000, seed=9)
    other = monte_carlo(e, cov, n_sims=5_000, seed=10)
    assert first.var == again.var and first.es == again.es
    assert first.var != other.var
    assert first.var == monte_carlo_var(e, cov, n_sims=5_000, seed=9)
    assert first.es == monte_carlo_es(e, cov, n_sims=5_000, seed=9)
    assert first.pnl.shape == (5_000,)
    by_function = monte_carlo_var(lambda shocks: shocks @ e, cov, n_sims=5_000, seed=9)
    assert by_function == pytest.approx(first.var, rel=1e-12)


def test_monte_carlo_repairs_a_non_psd_covariance() -> None:
    # pairwise-estimated correlations that are jointly impossible
    bad = np.array([[1.0, 0.9, -0.9], [0.9, 1.0, 0.9], [-0.9, 0.9, 1.0]])
    assert np.linalg.eigvalsh(bad).min() < 0
    with pytest.raises(np.linalg.LinAlgError):
        np.linalg.cholesky(bad)
    value = monte_carlo_var(np.ones(3), bad, n_sims=2_000)
    assert np.isfinite(value) and value > 0


@given(st.integers(1, 8), st.integers(0, 2**32 - 1))
@settings(max_examples=40, deadline=None)
def test_nearest_psd_is_symmetric_psd_and_choleskyable(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.uniform(-1.0, 1.0, size=(n, n))
    repaired = nearest_psd(a)
    np.testing.assert_array_equal(repaired, repaired.T)
    assert np.linalg.eigvalsh(repaired).min() >= -1e-12 * max(1.0, np.abs(a).max())
    np.linalg.cholesky(repaired)


def test_nearest_psd_leaves_a_pd_matrix_alone() -> None:
    m = np.random.default_rng(4).standard_normal((5, 5))
    pd = m @ m.T + 5 * np.eye(5)
    np.testing.assert_allclose(nearest_psd(pd), pd, rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------- filtered historical


def reference_fhs(series: np.ndarray, lam: float) -> np.ndarray:
    variance = [float(np.mean(series**2))]
    for r in series:
        variance.append(lam * variance[-1] + (1 - lam) * r * r)
    sigma = np.sqrt(np.array(variance))
    return series * sigma[-1] / sigma[:-1]


def test_filtered_historical_matches_loop_reference() -> None:
    series = np.random.default_rng(8).standard_t(5, size=500) * 1e4
    np.testing.assert_allclose(
        filtered_historical_pnl(series, 0.94), reference_fhs(series, 0.94), rtol=1e-12
    )
    assert filtered_historical_var(series, 0.99) == pytest.approx(
        reference_var(reference_fhs(series, 0.94), 0.99), rel=1e-12
    )
    stacked = filtered_historical_var(np.stack([series, 2 * series]), 0.99)
    np.testing.assert_allclose(stacked, np.array([1.0, 2.0]) * stacked[0], rtol=1e-12)


def test_filtered_historical_reacts_to_a_volatility_regime() -> None:
    rng = np.random.default_rng(12)
    calm_then_stressed = np.concatenate([rng.normal(0, 1.0, 400), rng.normal(0, 3.0, 100)])
    stressed_then_calm = calm_then_stressed[::-1].copy()
    hs = historical_var(calm_then_stressed)
    assert filtered_historical_var(calm_then_stressed) > hs
    assert filtered_historical_var(stressed_then_calm) < hs


def test_filtered_historical_all_zero() -> None:
    assert filtered_historical_var(np.zeros(500)) == 0.0


# ------------------------------------------------------------------------- horizon


def test_scale_to_horizon_is_square_root_of_time() -> None:
    assert scale_to_horizon(2.0) == pytest.approx(2.0 * math.sqrt(10))
    assert isinstance(scale_to_horizon(2.0), float)
    np.testing.assert_allclose(scale_to_horizon(np.array([1.0, 4.0]), 4), [2.0, 8.0])
    with pytest.raises(ValueError):
        scale_to_horizon(1.0, 0)
