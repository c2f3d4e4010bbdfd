# Databricks notebook source
# MAGIC %md
# MAGIC # VaR methods side by side
# MAGIC For one region or the firm on one business date: historical simulation (the pipeline's
# MAGIC figure, from the stored P&L vector), filtered historical simulation (EWMA 0.94), a
# MAGIC normal fit to the HS P&L, delta-normal from bump-and-reprice exposures and the
# MAGIC covariance of the 500 daily factor shocks, and Monte Carlo from that covariance with
# MAGIC full revaluation — all from `risk_models.var`.

# COMMAND ----------

# %%
from functools import partial

from databricks_jobs import quant

widget = partial(quant.widget, globals().get("dbutils"))  # None outside Databricks
show = quant.display_function(globals())

# COMMAND ----------

# %%
lake_root = widget("lake_root", "./var/demo/lake")
landing_root = widget("landing_root", "./var/demo/landing")
business_date = widget("business_date", "")
nodes = [n.strip() for n in widget("nodes", quant.FIRM).split(",") if n.strip()]
n_sims = int(widget("n_sims", "20000"))
plots_dir = widget("plots_dir", "./var/notebooks")
day = quant.parse_date(business_date) if business_date else quant.latest_date(lake_root)

# COMMAND ----------

# %%
import pandas as pd

table = pd.concat(
    [quant.compare_methods(lake_root, landing_root, day, node, n_sims=n_sims) for node in nodes],
    ignore_index=True,
)
show(table)

# COMMAND ----------

# MAGIC %md ## VaR by method (USD), nodes as columns

# COMMAND ----------

# %%
show(table.pivot(index="method", columns="node", values="var_99_1d_usd").round(0))
methods_figure = quant.plot_methods(table)
methods_plot = quant.save_figure(methods_figure, plots_dir, f"var_methods_{day}.png")
show(methods_figure)
