"""``snapworker schema``: the config's JSON Schema. Every example config (and the one the k8s
manifests embed in their ConfigMaps) validates against what the real CLI prints; an unknown
key or a wrong type does not. Printing it loads neither the state DB layer nor boto3."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "config"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "snapworker", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    r = _cli("schema")
    assert r.returncode == 0, r.stderr
    schema = json.loads(r.stdout)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    assert cls is jsonschema.Draft202012Validator
    return cls(schema)


def _configs() -> list[tuple[str, Any]]:
    """Every snapworker config among the examples: the plain files, and each one embedded
    in a k8s manifest's ConfigMap (the manifests themselves are not configs)."""
    out: list[tuple[str, Any]] = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        docs = list(yaml.safe_load_all(path.read_text()))
        if not any(isinstance(d, dict) and "kind" in d for d in docs):
            (doc,) = docs
            out.append((path.name, doc))
            continue
        for d in docs:
            if isinstance(d, dict) and d.get("kind") == "ConfigMap":
                for key, text in d.get("data", {}).items():
                    if key.endswith((".yaml", ".yml")):
                        out.append((f"{path.name}:{key}", yaml.safe_load(text)))
    return out


CONFIGS = _configs()


def test_the_examples_include_the_k8s_configmaps() -> None:
    names = [name for name, _ in CONFIGS]
    assert "minimal.yaml" in names and "example.yaml" in names
    assert any(n.startswith("k8s-cronjob.yaml:") for n in names)
    assert any(n.startswith("k8s-deployment.yaml:") for n in names)


@pytest.mark.parametrize(("name", "config"), CONFIGS, ids=[n for n, _ in CONFIGS])
def test_every_example_config_validates(
    validator: jsonschema.protocols.Validator, name: str, config: Any
) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(config)]
    assert errors == []
    # and snapworker itself takes it
    assert isinstance(config, dict) and config["policies"]


def _example() -> dict[str, Any]:
    return copy.deepcopy(dict(CONFIGS)["example.yaml"])


@pytest.mark.parametrize(
    "where",
    [(), ("aws",), ("policies", 0), ("policies", 0, "retention"), ("policies", 0, "select")],
)
def test_an_unknown_key_is_rejected(validator: jsonschema.protocols.Validator, where: Any) -> None:
    config = _example()
    node: Any = config
    for part in where:
        node = node.setdefault(part, {}) if isinstance(part, str) else node[part]
    node["keep_lst"] = 3
    errors = list(validator.iter_errors(config))
    assert errors
    assert any("keep_lst" in e.message and "not allowed" in e.message for e in errors)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("policies", 0, "retention", "keep_last"), "3"),
        (("policies", 0, "copy_automated"), "true"),
        (("policies", 0, "select", "clusters"), "prod-*"),
        (("aws", "max_attempts"), True),
        (("policies",), {"name": "prod"}),
    ],
)
def test_a_wrong_type_is_rejected(
    validator: jsonschema.protocols.Validator, path: tuple[Any, ...], value: Any
) -> None:
    config = _example()
    node: Any = config
    for part in path[:-1]:
        node = node.setdefault(part, {}) if isinstance(part, str) else node[part]
    node[path[-1]] = value
    assert not validator.is_valid(config)


def test_the_schema_says_what_each_key_is(validator: jsonschema.protocols.Validator) -> None:
    schema = validator.schema
    assert isinstance(schema, dict)
    retention = schema["$defs"]["Retention"]
    assert retention["additionalProperties"] is False
    assert "newest N snapshots" in retention["properties"]["keep_last"]["description"]
    # every object the models define refuses unknown keys, as the models do
    assert all(d.get("additionalProperties") is False for d in schema["$defs"].values())
    assert schema["additionalProperties"] is False


PROBE = """\
import sys
from snapworker.entrypoints.cli import main
sys.argv = ["snapworker", "schema"]
try:
    main()
except SystemExit:
    pass
heavy = ("boto3", "botocore", "sqlalchemy", "sqlmodel", "alembic", "snapworker.adapters")
print("IMPORTED", *sorted(n for n in sys.modules if n.split(".")[0] in heavy[:5]
                          or n.startswith(heavy[5])), file=sys.stderr)
"""


def test_schema_imports_neither_the_state_db_layer_nor_boto3() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert json.loads(done.stdout)["title"] == "snapworker configuration"
    (line,) = [ln for ln in done.stderr.splitlines() if ln.startswith("IMPORTED")]
    assert line.split()[1:] == []
