# Databricks notebook source
# MAGIC %md
# MAGIC # Explore a day's VaR
# MAGIC VaR 99% 1-day / 10-day and ES 97.5% of every node (firm, regions, desks, books) for one
# MAGIC business date, read from the Delta tables the nightly jobs write, and the books that
# MAGIC contribute most to the firm's (or any node's) VaR — Euler component VaR, which adds up
# MAGIC to the node's VaR. Reads Delta with `deltalake`, so it also runs outside Databricks.

# COMMAND ----------

from functools import partial

from databricks_jobs import quant

widget = partial(quant.widget, globals().get("dbutils"))  # None outside Databricks
show = globals().get("display", print)

# COMMAND ----------

lake_root = widget("lake_root", "./var/demo/lake")
business_date = widget("business_date", "")
node_level, node = widget("level", "firm"), widget("node", "FIRM")
top_n = int(widget("top_n", "10"))
day = quant.parse_date(business_date) if business_date else quant.latest_date(lake_root)
print(f"business date {day}, lake {lake_root}")

# COMMAND ----------

# MAGIC %md ## VaR and ES by node

# COMMAND ----------

nodes = quant.var_by_node(lake_root, day)
show(nodes)

# COMMAND ----------

# MAGIC %md ## Top contributors to the node's VaR

# COMMAND ----------

contributors = quant.top_contributors(lake_root, day, level=node_level, node=node, n=top_n)
node_var = nodes.loc[nodes["node"] == node, "var_99_1d_usd"].iloc[0]
print(f"{node} VaR 99% 1d: {node_var:,.0f} USD; top {len(contributors)} books:")
show(contributors)
