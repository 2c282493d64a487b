"""What `lfsd` prints, in pieces that need no service: strict JSON from `evaluate --json`, the warning for a
prompt token the model has not learned or had erased, and which log records reach the terminal."""

from __future__ import annotations

import json
import logging
import math


def test_evaluate_json_is_strict():
    from components.cli.pipeline_commands import _strict

    text = json.dumps(_strict({"bwt": math.nan, "per": [1.0, math.inf], "step": 1}), allow_nan=False)

    def refuse(name):
        raise ValueError(name)

    assert json.loads(text, parse_constant=refuse) == {"bwt": None, "per": [1.0, None], "step": 1}


def test_unknown_and_erased_tokens_are_named(capsys):
    from components.cli.generate_command import _warn_tokens

    _warn_tokens("a <xuriby> and a <gone> and a <nosuch> cross", ["xuriby"], ["gone"])
    err = capsys.readouterr().err
    assert "warning: <xuriby>" not in err
    assert "<gone> was erased" in err and "<nosuch> is not a concept of this model (it knows <xuriby>)" in err


def _record(name: str, level: int, **extra) -> logging.LogRecord:
    record = logging.LogRecord(name, level, __file__, 1, "m", None, None)
    record.__dict__.update(extra)
    return record


def test_the_terminal_gets_lfsd_lines_and_lfsd_warnings_only():
    from flows.env import LFSD_LINE, shown_on_terminal

    assert shown_on_terminal(_record("prefect.flow_runs", logging.INFO, **{LFSD_LINE: True}))
    assert shown_on_terminal(_record("components.ray_train.job", logging.WARNING))
    assert not shown_on_terminal(_record("prefect.task_runs", logging.INFO))  # "Finished in state Completed()"
    assert not shown_on_terminal(_record("prefect.task_runs", logging.ERROR))  # the crash report: the log has it
    assert not shown_on_terminal(_record("mlflow.pyfunc", logging.WARNING))
    assert not shown_on_terminal(_record("components.training.loop", logging.INFO))
