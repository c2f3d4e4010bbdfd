"""The sample-data generator: contracts of docs/data.md, determinism, and market realism."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import re
from pathlib import Path

import holidays
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from databricks_jobs import landing
from databricks_jobs.reference_data import BOOKS_SCHEMA, INSTRUMENTS_SCHEMA, MARKET_SCHEMA
from eodrisk.calendar import business_calendars, business_days, configured_regions
from eodrisk.sample_data import GeneratedNight, generate_night
from eodrisk.sample_data.market import equity_index, market_history
from eodrisk.sample_data.universe import EQUITIES, HOME_CURRENCY

LAST = dt.date(2026, 11, 24)  # a Tuesday
DATES = business_days(LAST, 4)
REGIONS = configured_regions()
TRADES = 1_500

# What the jobs read (the landing contract's one home), not a copy of the generator's lists.
BOOK_COLUMNS = BOOKS_SCHEMA.fieldNames()
INSTRUMENT_COLUMNS = INSTRUMENTS_SCHEMA.fieldNames()
MARKET_COLUMNS = MARKET_SCHEMA.fieldNames()
TRADE_COLUMNS = list(landing.TRADE_COLUMNS)


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> GeneratedNight:
    return generate_night(tmp_path_factory.mktemp("landing"), DATES, trades_per_region=TRADES)


@pytest.fixture(scope="module")
def market(night: GeneratedNight) -> pd.DataFrame:
    """Wide market history: index date, one column per risk factor."""
    long = pd.read_csv(night.market_data, dtype={"risk_factor": str})
    return long.pivot(index="date", columns="risk_factor", values="value")


@pytest.fixture(scope="module")
def instruments(night: GeneratedNight) -> pd.DataFrame:
    return pd.read_csv(night.instruments, dtype={"underlying": str}).set_index("instrument_id")


@pytest.fixture(scope="module")
def trades(night: GeneratedNight) -> dict[tuple[dt.date, str], pd.DataFrame]:
    return {key: pd.read_csv(path) for key, path in night.trade_files.items()}


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


# ---- calendar -----------------------------------------------------------------------------


def test_files_land_on_each_regions_business_days_only(night: GeneratedNight) -> None:
    """23 November 2026 is Labour Thanksgiving in Tokyo (XJPX): no APAC file; the others land."""
    labour_thanksgiving = dt.date(2026, 11, 23)
    assert labour_thanksgiving in DATES
    assert (labour_thanksgiving, "APAC") not in night.trade_files
    assert not (night.landing_root / "APAC" / "trades_20261123.csv").exists()
    for region in ("EMEA", "AMER"):
        assert night.trade_files[(labour_thanksgiving, region)].exists()
    calendars = business_calendars()
    for day, region in night.trade_files:
        assert calendars.is_business_day(day, region), (day, region)


# ---- files and contracts -------------------------------------------------------------------


def test_layout_and_columns_exactly_as_documented(night: GeneratedNight) -> None:
    root = night.landing_root
    assert night.books == root / "reference" / "books.csv"
    assert night.instruments == root / "reference" / "instruments.csv"
    assert night.market_data == root / "market" / "market_data.csv"
    assert list(pd.read_csv(night.books).columns) == BOOK_COLUMNS
    assert list(pd.read_csv(night.instruments).columns) == INSTRUMENT_COLUMNS
    assert night.market_data.read_text().splitlines()[0] == ",".join(MARKET_COLUMNS)
    calendars = business_calendars()
    open_days = {(d, r) for d in DATES for r in REGIONS if calendars.is_business_day(d, r)}
    assert set(night.trade_files) == open_days
    for (day, region), path in night.trade_files.items():
        assert path == root / region / f"trades_{day:%Y%m%d}.csv"
        assert night.markers[(day, region)] == root / region / f"_SUCCESS_{day:%Y%m%d}"
        assert path.read_text(encoding="utf-8").splitlines()[0] == ",".join(TRADE_COLUMNS)
    leftovers = [p for p in root.rglob("*") if p.name.startswith(".")]
    assert leftovers == []


def test_marker_manifest_matches_its_file(night: GeneratedNight) -> None:
    for key, path in night.trade_files.items():
        marker = night.markers[key]
        manifest = json.loads(marker.read_text())
        data = path.read_bytes()
        assert list(manifest) == ["file", "rows", "bytes", "sha256"]
        assert manifest["file"] == path.name
        assert manifest["bytes"] == len(data)
        assert manifest["sha256"] == hashlib.sha256(data).hexdigest()
        assert manifest["rows"] == data.count(b"\n") - 1 == night.rows[key] == TRADES
        assert marker.stat().st_mtime_ns >= path.stat().st_mtime_ns


def test_same_seed_is_byte_identical_and_another_seed_differs(tmp_path: Path) -> None:
    kwargs = {"trades_per_region": 300, "regions": ("EMEA", "AMER")}
    generate_night(tmp_path / "a", DATES[-2:], **kwargs)
    generate_night(tmp_path / "b", DATES[-2:], **kwargs)
    generate_night(tmp_path / "c", DATES[-2:], seed=7, **kwargs)
    a, b, c = _tree(tmp_path / "a"), _tree(tmp_path / "b"), _tree(tmp_path / "c")
    assert len(a) == 4 + 2 * 2 * 2  # books, instruments, stress periods, market; files
    assert a == b
    assert a.keys() == c.keys()
    for name in a:
        if name.startswith(("market", "EMEA/trades", "AMER/trades")):
            assert a[name] != c[name], name


def test_hierarchy_and_references(
    night: GeneratedNight,
    instruments: pd.DataFrame,
    trades: dict[tuple[dt.date, str], pd.DataFrame],
) -> None:
    books = pd.read_csv(night.books)
    assert books["book"].is_unique
    for region in REGIONS:
        mine = books[books["region"] == region]
        desks = set(mine["desk"])
        assert len(desks) == 4
        assert all(d.startswith(f"{region}_") for d in desks)
        assert mine.groupby("desk").size().between(2, 4).all()
        assert all(b.startswith(f"{d}_") for b, d in zip(mine["book"], mine["desk"], strict=True))
    region_of_book = books.set_index("book")["region"]
    id_pattern = re.compile(r"^[A-Z]+-\d{8}$")
    for (day, region), frame in trades.items():
        assert list(frame.columns) == TRADE_COLUMNS
        assert frame["trade_id"].is_unique
        assert frame["trade_id"].map(lambda s: bool(id_pattern.match(s))).all()
        assert frame["trade_id"].str.startswith(f"{region}-").all()
        assert (frame["business_date"] == day.isoformat()).all()
        assert (frame["trade_date"] <= day.isoformat()).all()
        assert pd.to_datetime(frame["trade_date"]).dt.dayofweek.lt(5).all()
        assert (frame["book"].map(region_of_book) == region).all()
        assert frame["instrument_id"].isin(instruments.index).all()
        assert (
            frame["currency"] == instruments.loc[frame["instrument_id"], "currency"].values
        ).all()
        assert set(frame["side"]) == {"BUY", "SELL"}
        assert np.isfinite(frame["quantity"]).all() and (frame["quantity"] > 0).all()
        assert np.isfinite(frame["price"]).all() and (frame["price"] > 0).all()


def test_every_type_in_every_region_weighted_to_home_currency(
    instruments: pd.DataFrame, trades: dict[tuple[dt.date, str], pd.DataFrame]
) -> None:
    for region in REGIONS:
        frame = trades[(LAST, region)]
        kind = instruments.loc[frame["instrument_id"], "instrument_type"].values
        assert set(kind) == {"EQUITY", "FX", "BOND", "OPTION"}
        shares = frame["currency"].value_counts(normalize=True)
        home = HOME_CURRENCY[region]
        assert shares.idxmax() == home
        assert len(shares) == 3 and shares.min() > 0.1  # cross-currency holdings


def test_prices_are_closes_on_trade_date_and_notionals_realistic(
    market: pd.DataFrame, instruments: pd.DataFrame, trades: dict[tuple[dt.date, str], pd.DataFrame]
) -> None:
    for region in REGIONS:
        frame = trades[(LAST, region)].join(instruments, on="instrument_id", rsuffix="_i")
        kind = frame["instrument_type"]
        eq = frame[kind == "EQUITY"]
        closes = [
            market.at[d, f"EQ.{u}"] for d, u in zip(eq["trade_date"], eq["underlying"], strict=True)
        ]
        assert np.array_equal(eq["price"].to_numpy(), np.array(closes))
        assert (frame.loc[kind == "FX", "price"] == 1.0).all()
        bonds = frame.loc[kind == "BOND", "price"]
        assert bonds.between(60.0, 140.0).all()
        fx = np.ones(len(frame))
        for ccy in ("EUR", "JPY"):
            m = (frame["currency"] == ccy).to_numpy()
            fx[m] = market.loc[frame.loc[m, "trade_date"], f"FX.{ccy}USD"].to_numpy()
        unit = frame["price"].to_numpy()
        opt = (kind == "OPTION").to_numpy()
        unit[opt] = [
            market.at[d, f"EQ.{u}"]
            for d, u in zip(frame.loc[opt, "trade_date"], frame.loc[opt, "underlying"], strict=True)
        ]
        notional_usd = frame["quantity"].to_numpy() * unit * fx
        assert notional_usd.min() >= 10_000 * 0.999 and notional_usd.max() <= 5_000_000 * 1.001
        assert 50_000 < np.median(notional_usd) < 1_000_000


def test_book_evolves_slowly_with_stable_trade_ids(
    trades: dict[tuple[dt.date, str], pd.DataFrame],
) -> None:
    for region in REGIONS:
        region_days = sorted(d for d, r in trades if r == region)
        for prev, day in itertools.pairwise(region_days):
            a = trades[(prev, region)].set_index("trade_id")
            b = trades[(day, region)].set_index("trade_id")
            kept = a.index.intersection(b.index)
            assert 0.9 <= len(kept) / len(a) < 1.0
            new = b.loc[b.index.difference(a.index)]
            assert (new["trade_date"] == day.isoformat()).all()
            stable = ["trade_date", "book", "instrument_id", "side", "quantity", "price"]
            assert a.loc[kept, stable].equals(b.loc[kept, stable])


# ---- market history ------------------------------------------------------------------------


def test_history_is_complete_on_business_days(night: GeneratedNight, market: pd.DataFrame) -> None:
    long = pd.read_csv(night.market_data)
    assert not long.duplicated(["date", "risk_factor"]).any()
    assert long["value"].notna().all() and np.isfinite(long["value"]).all()
    expected_dates = [d.isoformat() for d in business_days(LAST, 760)]
    assert list(market.index) == expected_dates
    assert market.notna().all().all()
    assert len(long) == market.shape[0] * market.shape[1] == night.market_rows
    tickers = [e.ticker for e in EQUITIES]
    expected = {f"EQ.{t}" for t in tickers} | {f"VOL.{t}" for t in tickers}
    expected |= {"FX.EURUSD", "FX.JPYUSD"}
    expected |= {
        f"IR.{c}.{t}"
        for c in ("USD", "EUR", "JPY")
        for t in ("3M", "6M", "1Y", "2Y", "5Y", "10Y", "30Y")
    }
    assert set(market.columns) == expected
    first_trade_date = DATES[0].isoformat()
    assert list(market.index).index(first_trade_date) >= 500
    assert (night.history_start, night.history_end) == (business_days(LAST, 760)[0], LAST)


def test_history_lengthens_for_a_long_backfill(tmp_path: Path) -> None:
    dates = business_days(LAST, 300)
    night = generate_night(tmp_path, dates, trades_per_region=50, regions=("APAC",))
    hist = pd.read_csv(night.market_data, usecols=["date"])["date"].unique()
    assert len(hist) == 300 + 500 - 1 + 1  # 500 changes end at the first date
    assert list(hist).index(dates[0].isoformat()) == 500
    # APAC's files: the firm days on which the Tokyo exchange trades
    tokyo = holidays.financial_holidays("XJPX")
    assert sorted(d for d, _ in night.trade_files) == [d for d in dates if d not in tokyo]
    assert 270 <= len(night.trade_files) < 290  # ~20 Tokyo holidays a year fall on weekdays
    assert len({p.parent for p in night.trade_files.values()}) == 1


def _equity_log_returns(market: pd.DataFrame) -> pd.DataFrame:
    eq = market[[c for c in market.columns if c.startswith("EQ.")]]
    return np.log(eq).diff().dropna()


def test_equity_returns_are_fat_tailed_and_cluster(market: pd.DataFrame) -> None:
    r = _equity_log_returns(market)
    excess_kurtosis = stats.kurtosis(r.to_numpy(), axis=0)
    assert (excess_kurtosis > 1.0).all(), excess_kurtosis
    sq = r**2
    acf1 = np.array([np.corrcoef(sq[c].to_numpy()[:-1], sq[c].to_numpy()[1:])[0, 1] for c in r])
    assert (acf1 > 0).all() and acf1.mean() > 0.05, acf1  # as for the other seeds below
    ann_vol = r.std() * np.sqrt(252)
    assert ann_vol.between(0.12, 0.8).all(), ann_vol


def test_same_currency_equities_are_correlated(market: pd.DataFrame) -> None:
    corr = _equity_log_returns(market).corr()
    for ccy in ("USD", "EUR", "JPY"):
        names = [f"EQ.{e.ticker}" for e in EQUITIES if e.currency == ccy]
        block = corr.loc[names, names].to_numpy()
        mean_pair = (block.sum() - len(names)) / (len(names) ** 2 - len(names))
        assert 0.35 <= mean_pair <= 0.7, (ccy, mean_pair)
    usd = [f"EQ.{e.ticker}" for e in EQUITIES if e.currency == "USD"]
    jpy = [f"EQ.{e.ticker}" for e in EQUITIES if e.currency == "JPY"]
    assert 0.1 <= corr.loc[usd, jpy].to_numpy().mean() <= 0.5


def test_stress_episode_is_the_worst_drawdown(night: GeneratedNight, market: pd.DataFrame) -> None:
    r = _equity_log_returns(market)
    index = np.exp(r.mean(axis=1).cumsum())
    dates = list(index.index)
    s0 = dates.index(night.stress_window[0].isoformat())
    s1 = dates.index(night.stress_window[1].isoformat())
    assert 300 <= len(dates) - s0 <= 400  # inside the last date's 500-day scenario window
    drawdown = index / index.cummax() - 1.0
    trough = int(np.argmin(drawdown.to_numpy()))
    assert s0 <= trough <= s1 + 20
    assert drawdown.min() < -0.2
    window = 15
    rolling = np.log(index).diff(window).to_numpy()
    worst_end = int(np.nanargmin(rolling))
    assert s0 <= worst_end <= s1 + window
    crash = market[[c for c in market.columns if c.startswith("EQ.")]]
    pre = dates.index(night.stress_window[0].isoformat())  # r starts one day after market
    move = crash.iloc[s1 + 1] / crash.iloc[pre] - 1.0
    assert move.between(-0.45, -0.12).all(), move
    # vols spike, rates rally, USD strengthens over the episode
    vols = market[[c for c in market.columns if c.startswith("VOL.")]]
    assert vols.iloc[s1 + 1].mean() > 1.5 * vols.iloc[pre].mean()
    assert market["IR.USD.2Y"].iloc[s1 + 1] < market["IR.USD.2Y"].iloc[pre] - 0.004
    assert market["FX.EURUSD"].iloc[s1 + 1] < market["FX.EURUSD"].iloc[pre]


def test_implied_vols_bounded_and_move_against_spot(market: pd.DataFrame) -> None:
    vols = market[[c for c in market.columns if c.startswith("VOL.")]]
    assert ((vols >= 0.05) & (vols <= 1.5)).all().all()
    r = _equity_log_returns(market)
    dv = vols.diff().dropna()
    spot_vol = [np.corrcoef(r[f"EQ.{e.ticker}"], dv[f"VOL.{e.ticker}"])[0, 1] for e in EQUITIES]
    assert max(spot_vol) < -0.2, spot_vol


def test_zero_curves_plausible_with_bp_scale_moves(market: pd.DataFrame) -> None:
    rates = market[[c for c in market.columns if c.startswith("IR.")]]
    assert rates.min().min() > -0.015 and rates.max().max() < 0.09
    daily_bp = rates.diff().dropna() * 1e4
    assert daily_bp.abs().max().max() < 100
    assert daily_bp.std().between(0.5, 15).all(), daily_bp.std()
    fx = market[["FX.EURUSD", "FX.JPYUSD"]]
    assert fx["FX.EURUSD"].between(0.82, 1.60).all()  # its range since 1999
    assert (1.0 / fx["FX.JPYUSD"]).between(100, 200).all()
    fx_vol = np.log(fx).diff().std() * np.sqrt(252)
    assert fx_vol.between(0.04, 0.2).all()


def test_instruments_are_realistic_and_options_not_expired(instruments: pd.DataFrame) -> None:
    kinds = instruments["instrument_type"].value_counts()
    assert set(kinds.index) == {"EQUITY", "FX", "BOND", "OPTION"}
    eq = instruments[instruments["instrument_type"] == "EQUITY"]
    assert eq["currency"].value_counts().to_dict() == {"USD": 8, "EUR": 6, "JPY": 6}
    assert set(instruments.loc[instruments["instrument_type"] == "FX", "currency"]) == {
        "EUR",
        "JPY",
    }
    bonds = instruments[instruments["instrument_type"] == "BOND"]
    assert set(bonds["currency"]) == {"USD", "EUR", "JPY"}
    maturity_years = (pd.to_datetime(bonds["maturity_date"]) - pd.Timestamp(LAST)).dt.days / 365
    assert maturity_years.between(2, 31).all()
    assert bonds["coupon_rate"].between(0.0, 0.08).all()
    options = instruments[instruments["instrument_type"] == "OPTION"]
    assert set(options["option_type"]) == {"CALL", "PUT"}
    assert options["underlying"].isin(eq["underlying"]).all()
    expiry = pd.to_datetime(options["expiry_date"])
    months_out = (expiry - pd.Timestamp(LAST)).dt.days / 30.4
    assert (expiry > pd.Timestamp(LAST)).all()
    assert months_out.min() < 2 and months_out.max() < 19.5
    assert options.groupby("underlying")["strike"].nunique().ge(3).all()
    assert options["strike"].gt(0).all()
    for col in ("strike", "expiry_date", "option_type"):
        assert instruments.loc[instruments["instrument_type"] != "OPTION", col].isna().all()


@pytest.mark.parametrize(
    ("day", "reason"),
    [(dt.date(2026, 11, 21), "weekend"), (dt.date(2027, 1, 1), "New Year's Day")],
)
def test_rejects_dates_that_are_not_firm_business_days(
    tmp_path: Path, day: dt.date, reason: str
) -> None:
    with pytest.raises(ValueError, match=f"not firm business days: {day}.*{reason}"):
        generate_night(tmp_path, [day], trades_per_region=10)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_stylised_facts_hold_for_other_seeds(seed: int) -> None:
    market = market_history(seed, LAST).window(business_days(LAST, 760)[0], LAST)
    eq = [j for j, f in enumerate(market.factors) if f.startswith("EQ.")]
    r = np.diff(np.log(market.values[:, eq]), axis=0)
    assert np.median(stats.kurtosis(r, axis=0)) > 1.0
    sq = r**2
    acf1 = [np.corrcoef(sq[:-1, j], sq[1:, j])[0, 1] for j in range(r.shape[1])]
    assert np.mean(acf1) > 0.05
    corr = np.corrcoef(r.T)
    for ccy in ("USD", "EUR", "JPY"):
        idx = [j for j, e in enumerate(EQUITIES) if e.currency == ccy]
        block = corr[np.ix_(idx, idx)]
        assert 0.3 <= (block.sum() - len(idx)) / (len(idx) ** 2 - len(idx)) <= 0.75
    index = equity_index(market)
    trough = int(np.argmin(index / np.maximum.accumulate(index)))
    assert market.stress_start <= trough < market.stress_end + 15
    vols = market.values[:, [j for j, f in enumerate(market.factors) if f.startswith("VOL.")]]
    assert vols.min() >= 0.05 and vols.max() <= 1.5


def test_a_day_is_a_fixed_function_of_seed_and_date(tmp_path: Path) -> None:
    """Asking for a later end date never changes an earlier day's files (issue 18)."""
    early = generate_night(tmp_path / "early", DATES[-2:], trades_per_region=40)
    later_dates = [*DATES[-2:], *business_days(dt.date(2027, 2, 26), 2)]
    later = generate_night(tmp_path / "later", later_dates, trades_per_region=40)
    for key, path in early.trade_files.items():
        assert path.read_bytes() == later.trade_files[key].read_bytes(), key
        assert early.markers[key].read_bytes() == later.markers[key].read_bytes(), key
    assert early.instruments.read_bytes() == later.instruments.read_bytes()
    a = pd.read_csv(early.market_data, dtype=str)
    b = pd.read_csv(later.market_data, dtype=str)
    shared = a.merge(b, on=["date", "risk_factor"], suffixes=("_early", "_later"))
    assert len(shared) > 0.5 * len(a)
    assert (shared["value_early"] == shared["value_later"]).all()
    assert early.stress_window == later.stress_window
    # options listed on the anchor that expired by a later trade date rolled to a live expiry
    trades = pd.read_csv(later.trade_files[(later_dates[-1], "EMEA")], dtype=str)
    instruments = pd.read_csv(later.instruments, dtype=str).set_index("instrument_id")
    options = trades[trades["instrument_id"].str.startswith("OPT_")]
    opened = options[options["trade_date"] > "2026-12-31"]
    assert len(opened) > 0
    expiry = instruments.loc[opened["instrument_id"], "expiry_date"].to_numpy()
    assert (expiry > opened["trade_date"].to_numpy()).all()


def test_a_larger_universe_adds_expiries_to_the_default_one(
    tmp_path: Path, instruments: pd.DataFrame
) -> None:
    night = generate_night(tmp_path, DATES[-1:], trades_per_region=2_000, instruments=5_000)
    larger = pd.read_csv(night.instruments, dtype={"underlying": str})
    assert night.n_instruments == len(larger) >= 5_000
    assert larger["instrument_id"].is_unique
    # every instrument of the default universe is still there, the new ones are options
    assert set(instruments.index) <= set(larger["instrument_id"])
    added = larger[~larger["instrument_id"].isin(instruments.index)]
    assert (added["instrument_type"] == "OPTION").all()
    # ... on the same series (underlying, strike, type), each at more (monthly) expiries
    series = ["underlying", "strike", "option_type"]
    default_options = instruments[instruments["instrument_type"] == "OPTION"]
    assert set(added[series].itertuples(index=False)) <= set(
        default_options[series].itertuples(index=False)
    )
    per_series = larger[larger["instrument_type"] == "OPTION"].groupby(series).size()
    assert per_series.nunique() == 1 and per_series.iloc[0] > 5
    # the trades book the new instruments too
    traded = pd.concat(pd.read_csv(p, dtype=str) for p in night.trade_files.values())
    assert traded["instrument_id"].isin(larger["instrument_id"]).all()
    assert traded["instrument_id"].isin(added["instrument_id"]).any()
