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
    worst of 500 at 97.5%. ``k`` is computed as ``ceil(round(n * (1 - c), 9))`` so that
    floating error in ``1 - c`` cannot push it up by one, and is at least 1
    (see :func:`risk_models.var.tail_count`).
Historical ES
    At confidence ``c``: the mean of the ``k`` largest losses, same ``k``. So ES >= VaR
    at the same confidence, and ES equals VaR when ``k == 1``.
Horizon
    10-day = sqrt(10) x 1-day (:func:`risk_models.var.scale_to_horizon`) unless a method
    says otherwise.
Units
    Times and tenors in years, rates continuously compounded decimals, volatilities
    annualised decimals.

Modules
-------
``scenarios``   market history -> scenario shocks, shocks -> shocked levels
``pricing``     Black-Scholes price and greeks, zero curves, bond full revaluation
``var``         historical, parametric (delta-normal, delta-gamma), Monte Carlo and
                filtered historical VaR/ES; horizon scaling
``aggregate``   position P&L vectors -> node P&L vectors, hierarchy roll-up
``attribution`` component (Euler) and incremental VaR/ES
``backtest``    exceptions, Kupiec POF, Christoffersen, Basel traffic light

The package depends on numpy only, plus ``scipy.special`` for the normal and chi-square
distribution functions numpy lacks. No Spark, no pandas, no I/O.
"""
