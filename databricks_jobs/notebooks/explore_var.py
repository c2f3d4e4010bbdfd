# Databricks notebook source
# MAGIC %md
# MAGIC # Explore a day's VaR
# MAGIC VaR 99% 1-day / 10-day and ES 97.5% of every node (firm, regions, desks, books) for one
# MAGIC business date, read from the Delta tables the nightly jobs write, the scenario P&L
# MAGIC distribution of the firm (or a region) with VaR and ES marked, and the books that
# MAGIC contribute most to the node's VaR — Euler component VaR, which adds up to the node's
# MAGIC VaR. Reads Delta with `deltalake`, so it also runs outside Databricks (Jupyter:
# MAGIC docs/quants.md).

# COMMAND ----------

# %%
from functools import partial

from databricks_jobs import quant

widget = partial(quant.widget, globals().get("dbutils"))  # None outside Databricks
show = quant.display_function(globals())

# COMMAND ----------

# %%
lake_root = widget("lake_root", "./var/demo/lake")
business_date = widget("business_date", "")
node_level, node = widget("level", "firm"), widget("node", quant.FIRM)
top_n = int(widget("top_n", "10"))
plots_dir = widget("plots_dir", "./var/notebooks")
day = quant.parse_date(business_date) if business_date else quant.latest_date(lake_root)
print(f"business date {day}, lake {lake_root}")

# COMMAND ----------

# MAGIC %md ## VaR and ES by node

# COMMAND ----------

# %%
nodes = quant.var_by_node(lake_root, day)
show(nodes)

# COMMAND ----------

# MAGIC %md ## The scenario P&L distribution, VaR and ES marked

# COMMAND ----------

# %%
pnl_node = node if node_level in ("firm", "region") else quant.FIRM  # P&L vectors: firm, regions
pnl_figure = quant.plot_pnl_distribution(quant.node_pnl(lake_root, day, pnl_node), pnl_node, day)
pnl_plot = quant.save_figure(pnl_figure, plots_dir, f"pnl_distribution_{pnl_node}_{day}.png")
show(pnl_figure)

# COMMAND ----------

# MAGIC %md ## Top contributors to the node's VaR

# COMMAND ----------

# %%
contributors = quant.top_contributors(lake_root, day, level=node_level, node=node, n=top_n)
node_var = nodes.loc[nodes["node"] == node, "var_99_1d_usd"].iloc[0]
print(f"{node} VaR 99% 1d: {node_var:,.0f} USD; top {len(contributors)} books:")
show(contributors)
