# Databricks notebook source
# MAGIC %md
# MAGIC # Firm aggregation
# MAGIC Sums the regions' P&L vectors into the firm's and writes firm VaR/ES and the
# MAGIC diversification benefit (`databricks_jobs.firm_risk`). The task's output — the
# MAGIC night's summary as JSON — is what Airflow's Slack summary reads through
# MAGIC `runs/get-output`.

# COMMAND ----------

from databricks_jobs.firm_risk import run

PARAMETERS = ("business_date", "regions", "lake_root", "run_id")
values = {name: dbutils.widgets.get(name) for name in PARAMETERS}
summary_json = run([f"--{name.replace('_', '-')}={value}" for name, value in values.items()])

# COMMAND ----------

dbutils.notebook.exit(summary_json)
