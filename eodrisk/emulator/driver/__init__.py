"""The driver harness: what runs inside a worker process, on the cluster environment's Python.

It plays the part of the Databricks Runtime's driver: it owns the Spark session and executes
one task at a time. It is copied into each cluster environment as the top-level package
``emulator_driver`` (:mod:`eodrisk.emulator.runtime`) and imports only the standard library,
pyspark and its own modules -- never ``eodrisk``, which a cluster does not have.
"""
