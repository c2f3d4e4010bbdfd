"""Job ``migrate``: apply the ``sql/`` migrations this artifact ships, with the owner role.

A deploy step, not part of the night: CI runs it after ``databricks bundle deploy`` (and an
operator may run it with ``databricks bundle run migrate``); locally ``eodrisk db upgrade``
calls the same function. The DSN (``EODRISK_PG_DSN``) is the schema owner's, from the
secret scope; the nightly loader's is ``risk_loader``'s and cannot run DDL.
"""

from __future__ import annotations

import argparse

from databricks_jobs.postgres import apply_migrations, dsn_from_env, shipped_migrations


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    applied = apply_migrations(dsn_from_env())
    print(f"applied {applied} migration(s): the schema is at {shipped_migrations()[-1]}")


if __name__ == "__main__":
    main()
