"""Unity Catalog on Databricks, path-based Delta locally: one mapping, declared in the bundle."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from databricks_jobs.delta_store import table_location, unity_catalog
from eodrisk.emulator.bundle import load_bundle

REPO_ROOT = Path(__file__).resolve().parents[2]
SP = "6f1c2a9e-0b7d-4c55-9a1e-000000000001"


def test_a_uc_lake_root_names_catalog_tables_and_a_folder_names_paths():
    assert table_location("uc://risk", "gold.var_results") == "risk.gold.var_results"
    assert table_location("uc://risk_dev/", "silver.trades") == "risk_dev.silver.trades"
    assert table_location("/tmp/lake/", "gold.var_results") == "/tmp/lake/gold/var_results"
    assert table_location("s3://b/lake", "silver.trades") == "s3://b/lake/silver/trades"
    assert unity_catalog("/Volumes/risk/lake/tables") is None
    for bad in ("uc://Risk", "uc://risk.gold", "uc://"):
        with pytest.raises(ValueError, match="expected uc://<catalog>"):
            unity_catalog(bad)
    with pytest.raises(ValueError, match="invalid table name"):
        table_location("uc://risk", "bronze.x")


@pytest.mark.parametrize("target", ["dev", "staging", "prod"])
def test_deployed_targets_write_unity_catalog_tables_and_read_the_landing_volume(target):
    bundle = load_bundle(
        REPO_ROOT, target=target, variables={"service_principal_name": SP}, environ={}
    )
    assert bundle.variables["lake_root"] == "uc://risk"
    assert bundle.variables["landing_root"] == "/Volumes/risk/landing/files"
    ingest = next(j for j in bundle.jobs.values() if j.resource_key == "ingest_trades")
    assert {"name": "lake_root", "default": "uc://risk"} in ingest.settings["parameters"]


def test_the_local_target_keeps_the_path_based_lake():
    bundle = load_bundle(REPO_ROOT, target="local", environ={})
    assert unity_catalog(bundle.variables["lake_root"]) is None


def test_schemas_and_volume_are_bundle_resources_with_grants():
    resources = yaml.safe_load((REPO_ROOT / "resources" / "unity_catalog.yml").read_text())
    schemas, volumes = resources["resources"]["schemas"], resources["resources"]["volumes"]
    assert {s["name"] for s in schemas.values()} == {"silver", "gold", "landing"}
    assert all(s["catalog_name"] == "${var.catalog}" for s in schemas.values())
    gold = {g["principal"]: set(g["privileges"]) for g in schemas["gold"]["grants"]}
    assert gold["${var.analysts_group}"] == {"USE_SCHEMA", "SELECT"}  # analysts read gold
    silver = {g["principal"] for g in schemas["silver"]["grants"]}
    assert "${var.analysts_group}" not in silver
    (volume,) = volumes.values()
    assert volume["name"] == "files" and volume["volume_type"] == "EXTERNAL"
    # Nobody but the owner (the deploying service principal) may write the tables.
    for grants in [s["grants"] for s in schemas.values()] + [volume["grants"]]:
        for grant in grants:
            assert not {"MODIFY", "ALL_PRIVILEGES", "CREATE_TABLE"} & set(grant["privileges"])
