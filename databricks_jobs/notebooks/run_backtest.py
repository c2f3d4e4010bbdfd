# Databricks notebook source
# MAGIC %md
# MAGIC # Backtest a node
# MAGIC The stored daily backtest of the firm or a region (`gold.backtest`: the previous day's
# MAGIC VaR 99% 1-day against the hypothetical P&L), over its last 250 observations: exceptions,
# MAGIC the Basel traffic light, Kupiec's proportion-of-failures test and Christoffersen's
# MAGIC independence and conditional-coverage tests (`risk_models.backtest`), and the plot of
# MAGIC VaR against realised P&L over the window.

# COMMAND ----------

# %%
from functools import partial

from databricks_jobs import quant

widget = partial(quant.widget, globals().get("dbutils"))  # None outside Databricks
show = quant.display_function(globals())

# COMMAND ----------

# %%
lake_root = widget("lake_root", "./var/demo/lake")
node = widget("node", quant.FIRM)
up_to = widget("business_date", "")
plots_dir = widget("plots_dir", "./var/notebooks")
result = quant.node_backtest(lake_root, node, quant.parse_date(up_to) if up_to else None)
stats = result["summary"]

# COMMAND ----------

# %%
print(
    f"{node}: {stats['exceptions']} exceptions in {stats['observations']} observations "
    f"(expected {0.01 * stats['observations']:.1f}); Basel zone {stats['zone']}, "
    f"plus factor {stats['plus_factor']:.2f}"
)
print(f"Kupiec POF: LR {stats['kupiec_lr']:.3f}, p-value {stats['kupiec_p_value']:.3f}")
if stats["christoffersen_lr_ind"] is not None:
    print(
        f"Christoffersen: independence LR {stats['christoffersen_lr_ind']:.3f} "
        f"(p {stats['christoffersen_p_ind']:.3f}), conditional coverage LR "
        f"{stats['christoffersen_lr_cc']:.3f} (p {stats['christoffersen_p_cc']:.3f})"
    )
print("exception dates:", ", ".join(str(d) for d in result["exception_dates"]) or "none")

# COMMAND ----------

# MAGIC %md ## VaR against realised P&L

# COMMAND ----------

# %%
backtest_figure = quant.plot_backtest(result["daily"], node)
backtest_plot = quant.save_figure(backtest_figure, plots_dir, f"backtest_{node}.png")
show(backtest_figure)
show(result["daily"].tail(20))
