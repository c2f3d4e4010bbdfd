# Databricks notebook source
# MAGIC %md
# MAGIC # Firm aggregation
# MAGIC Sums the regions' P&L vectors into the firm's and writes firm VaR/ES and the
# MAGIC diversification benefit (`databricks_jobs.jobs.firm_risk`). The task's output — the
# MAGIC night's summary as JSON — is what Airflow's Slack summary reads through
# MAGIC `runs/get-output`. Outside Databricks the parameters come from `EODRISK_<NAME>`
# MAGIC environment variables and the summary is printed (it writes to the lake: use a copy).

# COMMAND ----------

# %%
from functools import partial

from databricks_jobs import quant
from databricks_jobs.jobs.firm_risk import run

dbutils = globals().get("dbutils")  # None outside Databricks
widget = partial(quant.widget, dbutils)
PARAMETERS = ("business_date", "business_dates", "regions", "lake_root", "run_id")
values = {name: widget(name, "") for name in PARAMETERS}
summary_json = run([f"--{name.replace('_', '-')}={value}" for name, value in values.items()])

# COMMAND ----------

# %%
if dbutils is not None:
    dbutils.notebook.exit(summary_json)
print(summary_json)
