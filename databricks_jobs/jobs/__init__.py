"""The job entry points: one module per Databricks ``python_wheel_task`` (a thin ``main()``).

The libraries they use live one level up in ``databricks_jobs``; pyproject.toml maps each
entry point name (what resources/jobs.yml runs) to ``databricks_jobs.jobs.<name>:main``.
"""
