"""MLflow packaging and registry of lifelong models: a pyfunc that needs only the artifact store, alias-based promotion.

    from components.registry import setup_tracking, log_lifelong_model, register_version, promote

    tracking          where MLflow state lives (inside the workspace)
    aliases           registration with lineage tags, `candidate`/`production` aliases, promote, rollback
    pyfunc            the lifelong model as an MLflow pyfunc (needs only its artifact store)
    packaging         how a chain becomes an MLflow model; shared_artifacts: what versions share, by hash
    integrity         what a version's files must hash to, checked before it is loaded or exported
    model_card        what a reviewer reads on a version before promoting it
    erased_versions   an erasure in MLflow: versions and runs that held the concept
    export            `lfsd export` writes LoRA + textual-inversion files; export_source reads a version
                      (through version_files); lora_formats: the layouts and metadata other tools read;
                      export_readme: the export's README, per tool which file to use

The pyfunc part imports mlflow (seconds); it is loaded only when one of its names is used.
"""

from __future__ import annotations

from components.registry.aliases import (
    CANDIDATE,
    PREVIOUS_PRODUCTION_TAG,
    PRODUCTION,
    PROMOTION_REASON_TAG,
    REQUIRED_LINEAGE_TAGS,
    RegistryError,
    get_alias_version,
    promote,
    register_version,
    rollback,
    set_alias,
)
from components.registry.tracking import artifact_root_default, mlflow_dir, setup_tracking, tracking_uri_default

_PYFUNC = {"LfsdPyfunc", "decode_png", "encode_png"}
_PACKAGING = {"log_lifelong_model", "model_signature", "pip_requirements", "stage_artifacts"}

__all__ = [
    "CANDIDATE",
    "PRODUCTION",
    "PREVIOUS_PRODUCTION_TAG",
    "PROMOTION_REASON_TAG",
    "REQUIRED_LINEAGE_TAGS",
    "RegistryError",
    "register_version",
    "set_alias",
    "get_alias_version",
    "promote",
    "rollback",
    "tracking_uri_default",
    "artifact_root_default",
    "mlflow_dir",
    "setup_tracking",
    *sorted(_PYFUNC | _PACKAGING),
]


def __getattr__(name: str):
    if name in _PYFUNC:
        from components.registry import pyfunc

        return getattr(pyfunc, name)
    if name in _PACKAGING:
        from components.registry import packaging

        return getattr(packaging, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
