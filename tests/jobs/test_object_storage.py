"""Landing files and lake tables on object storage, against a local S3 (moto's server mode).

The sensor check finds a region's files through ``airflow.sdk.ObjectStoragePath`` (the
Amazon provider's filesystem, credentials and endpoint from the environment as on a worker
with an instance role); the quant helpers read Delta tables at ``s3://`` URIs with
``storage_options`` and build paths as strings, so the scheme and bucket survive.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import boto3
import pandas as pd
import pytest
from deltalake import write_deltalake
from moto.server import ThreadedMotoServer

from databricks_jobs.quant import read_table, under
from tests import airflow_env

airflow_env.isolate()  # before airflow is imported
if str(airflow_env.DAGS_FOLDER) not in sys.path:
    sys.path.append(str(airflow_env.DAGS_FOLDER))  # as Airflow does for the DAG bundle

from eodrisk_dag import callbacks  # noqa: E402 - needs the dags folder on sys.path

BUCKET = "eodrisk-landing"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    ).create_bucket(Bucket=BUCKET)  # fmt: skip
    yield endpoint
    server.stop()


@pytest.fixture
def s3_env(s3_endpoint, monkeypatch) -> str:
    for name, value in {
        **CREDENTIALS,
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    return s3_endpoint


def test_the_sensor_finds_landing_files_in_s3(s3_env):
    s3 = boto3.client("s3")
    root = f"s3://{BUCKET}/files"
    marker, trades = f"{root}/EMEA/_SUCCESS_20261124", f"{root}/EMEA/trades_20261124.csv"
    assert callbacks.trades_landed(marker, trades) is False
    s3.put_object(Bucket=BUCKET, Key="files/EMEA/trades_20261124.csv", Body=b"trade_id\n")
    assert callbacks.trades_landed(marker, trades) is False
    s3.put_object(Bucket=BUCKET, Key="files/EMEA/_SUCCESS_20261124", Body=b"{}")
    assert callbacks.trades_landed(marker, trades) is True
    s3.delete_object(Bucket=BUCKET, Key="files/EMEA/trades_20261124.csv")
    with pytest.raises(FileNotFoundError, match=r"s3://eodrisk-landing/files/EMEA/trades_"):
        callbacks.trades_landed(marker, trades)


def test_paths_under_a_root_keep_the_scheme_and_bucket():
    assert under("s3://bucket/lake/", "gold", "var_results") == "s3://bucket/lake/gold/var_results"
    assert under("abfss://c@a.dfs.core.windows.net/lake", "gold", "x") == (
        "abfss://c@a.dfs.core.windows.net/lake/gold/x"
    )
    assert under("/Volumes/risk/lake/tables", "silver", "trades") == (
        "/Volumes/risk/lake/tables/silver/trades"
    )


def test_quant_helpers_read_a_delta_table_on_s3_with_storage_options(s3_endpoint):
    options = {
        **CREDENTIALS,
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_REGION": "us-east-1",
        "AWS_ALLOW_HTTP": "true",
        "AWS_S3_ALLOW_UNSAFE_RENAME": "true",
    }
    frame = pd.DataFrame(
        {"business_date": ["2026-11-24", "2026-11-24", "2026-11-25"], "node": ["A", "B", "A"]}
    )
    lake = f"s3://{BUCKET}/lake"
    write_deltalake(
        f"{lake}/gold/var_results", frame, partition_by=["business_date"], storage_options=options
    )
    read = read_table(lake, "gold.var_results", options, business_date="2026-11-24")
    assert sorted(read["node"]) == ["A", "B"]
