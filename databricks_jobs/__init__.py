"""What runs on Databricks: one thin ``main()`` per job, Spark transforms, the Delta store,
the Postgres loader. Imports ``risk_models`` and ``pyspark``; never ``eodrisk`` or Airflow."""
