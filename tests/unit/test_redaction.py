"""No credential in what lfsd shows (issue 30 §7): `redact` on the URIs lfsd prints, logs, tags or puts in an
artifact, and the places that show one (the Prefect artifact's run link, the "unreachable" error) on a URI that
carries a password."""

from __future__ import annotations

import pytest

from components.redaction import redact, redact_text

SECRET = "s3cr3t-pw"


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("http://alice:s3cr3t-pw@mlflow:5000", "http://alice:***@mlflow:5000"),
        (
            "postgresql+psycopg2://mlflow:s3cr3t-pw@postgres:5432/mlflow",
            "postgresql+psycopg2://mlflow:***@postgres:5432/mlflow",
        ),
        ("https://u:p%40ss:s3cr3t-pw@host/x?y=1", "https://u:***@host/x?y=1"),  # a ':' in the password too
        (
            "https://bucket.s3/k?X-Amz-Credential=AKIA&X-Amz-Signature=s3cr3t-pw&x=1",
            "https://bucket.s3/k?X-Amz-Credential=***&X-Amz-Signature=***&x=1",
        ),
        (
            "postgresql://db/mlflow?sslmode=require&password=s3cr3t-pw#f",
            "postgresql://db/mlflow?sslmode=require&password=***#f",
        ),
        ("http://token:s3cr3t-pw@prefect:4200/api?api_key=s3cr3t-pw", "http://token:***@prefect:4200/api?api_key=***"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("sqlite:////w/.lfsd/mlflow/mlflow.db", "sqlite:////w/.lfsd/mlflow/mlflow.db"),
        ("s3://lfsd/dvc", "s3://lfsd/dvc"),
        ("postgresql://mlflow@db/mlflow", "postgresql://mlflow@db/mlflow"),  # a user alone is no secret
        ("/a/local/path", "/a/local/path"),
        (None, ""),
    ],
)
def test_redact_masks_passwords_and_secret_query_values(uri, shown):
    assert redact(uri) == shown
    assert SECRET not in redact(uri)


def test_a_browser_link_drops_the_user_part():
    assert redact("https://alice:s3cr3t-pw@mlflow:5000/#/runs/1", drop_user=True) == "https://mlflow:5000/#/runs/1"


def test_redact_text_finds_every_uri_in_a_message():
    text = (
        "API request to http://alice:s3cr3t-pw@127.0.0.1:1/api/2.0/mlflow/experiments/get failed; "
        "backend 'postgresql://m:s3cr3t-pw@db/x' and s3://b/k?token=s3cr3t-pw"
    )
    out = redact_text(text)
    assert SECRET not in out
    assert "http://alice:***@127.0.0.1:1/api/2.0/mlflow/experiments/get failed" in out
    assert "'postgresql://m:***@db/x'" in out and "s3://b/k?token=***" in out


def test_the_prefect_artifacts_run_link_shows_no_password(monkeypatch):
    from components.publishing.summary import result_markdown, results_table, run_link
    from components.stepping import OnboardResult

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"https://alice:{SECRET}@mlflow.example:5000/")
    assert run_link("abc") == "https://mlflow.example:5000/#/runs/abc"
    result = OnboardResult("byruri", "onboarded", version="3", run_id="abc", gate="pass: better")
    assert SECRET not in result_markdown(result) and SECRET not in str(results_table([result]))


def test_an_unreachable_tracking_server_with_a_password_is_named_without_it(monkeypatch, tmp_path):
    """A real MLflow client against a port nothing listens on: the one-line error names the server, not
    its password (neither from the environment nor from the exception text MLflow wrote)."""
    import mlflow

    from components.cli.errors import service_failure

    uri = f"http://alice:{SECRET}@127.0.0.1:1"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    with pytest.raises(Exception) as err:
        mlflow.MlflowClient(tracking_uri=uri).search_experiments()
    message = service_failure(err.value)
    assert message is not None and "unreachable" in message, (message, str(err.value)[:300])
    assert SECRET not in message and "alice:***@127.0.0.1:1" in message
