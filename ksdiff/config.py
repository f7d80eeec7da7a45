"""The workflow configuration: load a YAML file, validate it, fill in defaults.

Defaults live in one place, the JSON schema at workflow/schemas/config.schema.yaml
(Snakemake's ``validate`` reads the same file), so the CLI, the tests and the
workflow can never disagree about them.
"""
from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import yaml

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    pass


def _schema() -> dict:
    if not SCHEMA_PATH.exists():
        raise ConfigError(f"config schema not found at {SCHEMA_PATH}")
    return yaml.safe_load(SCHEMA_PATH.read_text())


def _with_defaults(validator_class):
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def validate(config: dict) -> dict:
    """Return a validated copy of ``config`` with every default filled in."""
    config = copy.deepcopy(config)
    schema = _schema()
    cls = _with_defaults(jsonschema.Draft202012Validator)
    # Two passes: the first creates defaulted sub-objects, the second fills their defaults.
    for _ in range(2):
        errors = sorted(cls(schema).iter_errors(config), key=lambda e: list(e.path))
        if errors:
            e = errors[0]
            where = "/".join(str(p) for p in e.path) or "(top level)"
            raise ConfigError(f"config error at {where}: {e.message}")
    return config


def load(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file not found: {path}")
    return validate(yaml.safe_load(path.read_text()) or {})


def defaults(**overrides) -> dict:
    """The default configuration (one synthetic dataset) with top-level overrides."""
    cfg = {"datasets": [{"name": "synth", "root": "data/synth", "synthetic": True}]}
    cfg.update(overrides)
    return validate(cfg)


def dataclass_from_dict(cls, d: dict | None, what: str):
    """``cls(**d)`` for a config dataclass, refusing keys it does not have.

    The free-form config sections (model, train, infer, eval.expert) are
    checked here, so a typo never silently falls back to a default.
    """
    import dataclasses

    d = dict(d or {})
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"unknown {what} keys {unknown}; known keys: {sorted(known)}")
    return cls(**d)
