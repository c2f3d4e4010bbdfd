"""Pure, typed numpy risk models: scenarios, pricing, VaR/ES, aggregation, attribution, backtests.

Conventions, stated once and kept everywhere in this package
-------------------------------------------------------------
P&L
    Arrays of profit and loss have shape ``(..., n_scenarios)``: the last axis is the
    scenario (or the day, for a P&L history); any leading axes (positions, nodes, ...)
    are vectorised over. **Profit is positive.**
VaR and ES
    Returned as **positive losses** in the units of the P&L. A VaR can come out
    negative: that means the scenario at the quantile is a gain (e.g. a portfolio whose
    P&L is a positive constant). Nothing is clipped at zero.
Historical VaR
    At confidence ``c`` over ``n`` scenarios, the k-th largest loss with
    ``k = ceil(n * (1 - c))``, no interpolation: the 5th worst of 500 at 99%, the 13th
    worst of 500 at 97.5%. ``k`` is computed in exact decimal arithmetic on the
    confidence as written (its ``repr``), ``ceil(n * (1 - Decimal(repr(c))))``, so that
    binary floating error in ``1 - c`` cannot push it up by one (500 x (1 - 0.99) is
    5.000000000000004 in floats, exactly 5 here) while a confidence that really lies
    below 0.9999 still counts its extra scenario; then clipped to ``[1, n]``
    (see :func:`risk_models.var.tail_count`).
Historical ES
    At confidence ``c``: the mean of the ``k`` largest losses, same ``k``. So ES >= VaR
    at the same confidence, and ES equals VaR when ``k == 1``.
Horizon
    10-day = sqrt(10) x 1-day (:func:`risk_models.var.scale_to_horizon`) unless a method
    says otherwise.
Units
    Times and tenors in years (``days / 365`` from the valuation date), rates
    continuously compounded decimals, volatilities annualised decimals. Bonds pay annual
    coupons on their maturity's anniversaries.
Stress and FRTB
    Stress P&L is a full revaluation under a shocked market state; the worst loss is
    positive. FRTB ES is ES 97.5% on 10-day overlapping moves, liquidity-adjusted by the
    MAR33 cascade.

Modules
-------
``scenarios``   market history -> scenario shocks, shocks -> shocked levels
``pricing``     Black-Scholes price (and greeks), zero curves, bond coupon dates and prices
``var``         historical, parametric (delta-normal, delta-gamma), Monte Carlo and
                filtered historical VaR/ES; horizon scaling
``aggregate``   position P&L vectors -> node P&L vectors, hierarchy roll-up
``attribution`` component (Euler) and incremental VaR/ES
``backtest``    exceptions, Kupiec POF, Christoffersen, Basel traffic light; FRTB P&L
                attribution test and desk backtests
``stress``      hypothetical shocks, historical periods, worst loss per node
``frtb``        liquidity horizons, the MAR33 ES cascade, stressed calibration, IMCC

The package depends on numpy only, plus ``scipy.special`` for the normal and chi-square
distribution functions numpy lacks. No Spark, no pandas, no I/O.
"""
