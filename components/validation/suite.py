"""The Great Expectations 1.x suite over the manifest, kept in the repo as `concept_suite.json`.

`build_suite_dict()` builds it from `great_expectations.expectations` classes and `rules`; run
`python -m components.validation --write-suite` to rewrite the JSON after changing a rule (a unit
test fails while the two disagree). The shot counts are suite parameters (`$PARAMETER`), filled per run.

Each expectation's `meta` says which file a failure blames (`row`: the manifest row's path,
`folder`, or `concept.yaml`) and how to word it, so the report stays readable.

GX is imported inside functions: importing it costs ~8 s, which CLI start-up and test collection
must not pay. The ephemeral context and validation definition are built once per process.
"""

from __future__ import annotations

import functools
import json
import math
import os
from pathlib import Path
from typing import Any

import pandas as pd

from components.validation import rules
from components.validation.report import Problem

SUITE_FILE = Path(__file__).with_name("concept_suite.json")
SUITE_NAME = "concept_folder"
_INDEX_COLUMN = "path"


def _gx():
    """Import GX with analytics off (the machine is offline and analytics would only stall)."""
    os.environ["GX_ANALYTICS_ENABLED"] = "false"
    import great_expectations as gx

    return gx


def build_suite_dict() -> dict[str, Any]:
    """The suite as a JSON-ready dict, built from GX expectation classes."""
    gx = _gx()
    meta = {"rules": "components/validation/rules.py"}
    suite = gx.ExpectationSuite(name=SUITE_NAME, expectations=_expectations(), meta=meta)
    data = suite.to_json_dict()
    data.pop("id", None)
    for expectation in data["expectations"]:
        expectation.pop("id", None)
    return json.loads(json.dumps(data))  # plain JSON types, exactly what the file round-trips to


def _expectations() -> list:
    import great_expectations.expectations as gxe

    row = "row"
    sides = [
        gxe.ExpectColumnValuesToBeBetween(
            column=side,
            min_value=rules.MIN_SIDE,
            max_value=rules.MAX_SIDE,
            meta=_meta(row, f"{side} {{value}} px is outside {{min_value}}..{{max_value}} px"),
        )
        for side in ("width", "height")
    ]
    present = [
        gxe.ExpectColumnValuesToNotBeNull(
            column=col, meta=_meta(rules.CONCEPT_FILE, f"{col} is missing or not a string")
        )
        for col in ("name", "class_word")
    ]
    return [
        gxe.ExpectTableRowCountToBeBetween(
            min_value={"$PARAMETER": "min_shots"},
            max_value={"$PARAMETER": "max_shots"},
            meta=_meta("folder", "{observed} image(s); expected between {min_shots} and {max_shots} shots"),
        ),
        gxe.ExpectColumnValuesToBeUnique(
            column="sha256", meta=_meta(row, "duplicate image: same bytes as {others} (sha256 {value:.12})")
        ),
        *sides,
        gxe.ExpectColumnValuesToBeBetween(
            column="bytes",
            min_value=1,
            max_value=rules.MAX_BYTES,
            meta=_meta(row, "file size {value} bytes is outside {min_value}..{max_value} bytes"),
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="format",
            value_set=list(rules.ALLOWED_FORMATS),
            meta=_meta(row, "image format {value} is not accepted (allowed: {value_set})"),
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="mode",
            value_set=list(rules.ALLOWED_MODES),
            meta=_meta(row, "image mode {value} is not accepted (allowed: {value_set})"),
        ),
        *present,
        gxe.ExpectColumnValuesToMatchRegex(
            column="name",
            regex=rules.NAME_REGEX,
            meta=_meta(rules.CONCEPT_FILE, "name {value!r} does not match {regex}"),
        ),
        gxe.ExpectColumnValuesToMatchRegex(
            column="class_word",
            regex=rules.CLASS_WORD_REGEX,
            meta=_meta(rules.CONCEPT_FILE, "class_word {value!r} does not match {regex}"),
        ),
    ]


def _meta(blame: str, problem: str) -> dict[str, str]:
    return {"blame": blame, "problem": problem}


def write_suite(path: Path = SUITE_FILE) -> None:
    """Rewrite the suite JSON from the classes (a developer step, never run during validation)."""
    path.write_text(json.dumps(build_suite_dict(), indent=2) + "\n", encoding="utf-8")


def load_suite_dict(path: Path = SUITE_FILE) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


@functools.cache
def _validation_definition():
    """Ephemeral context -> pandas source -> dataframe asset -> whole-frame batch -> definition.

    Cached: building it is the slow part, and with the manifest passed as a batch parameter and the
    shot counts as suite parameters, one definition serves every folder.
    """
    gx = _gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = (
        context.data_sources.add_pandas("concept_folders")
        .add_dataframe_asset("manifest")
        .add_batch_definition_whole_dataframe("whole_manifest")
    )
    suite = context.suites.add(_load_suite(gx))
    return context.validation_definitions.add(gx.ValidationDefinition(name="concept_folder", data=batch, suite=suite))


def _load_suite(gx):
    """The suite from the JSON file; GX only logs bad expectations, so a short suite must fail here."""
    data = load_suite_dict()
    suite = gx.ExpectationSuite(name=data["name"], expectations=data["expectations"], meta=data.get("meta"))
    if len(suite.expectations) != len(data["expectations"]):
        raise ValueError(f"{SUITE_FILE}: some expectations are invalid; regenerate it with write_suite()")
    return suite


def run_suite(manifest: pd.DataFrame, *, min_shots: int, max_shots: int, folder_label: str) -> list[Problem]:
    """Validate the manifest; every failed expectation becomes problems blamed on a file."""
    params = {"min_shots": min_shots, "max_shots": max_shots}
    result = _validation_definition().run(
        batch_parameters={"dataframe": manifest},
        expectation_parameters=params,
        result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [_INDEX_COLUMN]},
    )
    problems: list[Problem] = []
    for outcome in result.results:
        if not outcome.success:
            problems += _problems(outcome, params, folder_label)
    return problems


def _problems(outcome, params: dict, folder_label: str) -> list[Problem]:
    config = outcome.expectation_config
    meta = config.meta or {}
    if (outcome.exception_info or {}).get("raised_exception"):
        message = outcome.exception_info.get("exception_message")
        return [Problem(folder_label, f"check {config.type} on {config.kwargs.get('column')} failed to run: {message}")]
    fields = {**params, **{k: v for k, v in config.kwargs.items() if not isinstance(v, dict)}}
    fields["observed"] = outcome.result.get("observed_value")
    blame, template = meta.get("blame", "folder"), meta.get("problem", f"failed {config.type}")
    rows = outcome.result.get("unexpected_index_list") or []
    if blame == "row" and rows:
        return [_row_problem(row, rows, config.kwargs["column"], template, fields) for row in rows]
    value = rows[0].get(config.kwargs.get("column")) if rows else None
    label = folder_label if blame in ("folder", "row") else blame
    return [Problem(label, _render(template, {**fields, "value": value, "others": ""}))]


def _row_problem(row: dict, rows: list[dict], column: str, template: str, fields: dict) -> Problem:
    value = row.get(column)
    others = [r[_INDEX_COLUMN] for r in rows if r.get(column) == value and r[_INDEX_COLUMN] != row[_INDEX_COLUMN]]
    return Problem(row[_INDEX_COLUMN], _render(template, {**fields, "value": value, "others": ", ".join(others)}))


def _render(template: str, fields: dict) -> str:
    """Fill a meta template; integral floats print as ints, lists as comma-separated."""
    clean = {k: _plain(v) for k, v in fields.items()}
    try:
        return template.format(**clean)
    except (KeyError, ValueError, IndexError, TypeError):
        return f"{template} ({clean})"


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if hasattr(value, "item") and not isinstance(value, str):  # numpy scalars
        return _plain(value.item())
    return value
