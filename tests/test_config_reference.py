"""docs/configuration.md is generated from the models and matches them; the schema is usable."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from posactors.config_reference import SECTION_EXAMPLES, json_schema, markdown, rows
from posactors.policy import parse_config

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "docs" / "configuration.md"


def test_the_committed_reference_is_the_generated_one():
    assert REFERENCE.read_text(encoding="utf-8") == markdown(), (
        "docs/configuration.md is out of date: "
        "python -m posactors.config_reference > docs/configuration.md"
    )


def test_every_key_has_a_type_a_default_and_a_meaning():
    table = rows(json_schema())
    paths = [r[0] for r in table]
    for must in ("exits.stop_loss.pct", "exits.tiers[].window.start", "engine.max_drawdown_pct"):
        assert must in paths
    for path, kind, default, meaning, _example in table:
        assert kind and default and meaning, path


@pytest.mark.parametrize("section", sorted(SECTION_EXAMPLES))
def test_each_example_is_a_valid_configuration(section):
    config, _ = parse_config(yaml.safe_load(SECTION_EXAMPLES[section]))
    assert config is not None


def test_the_schema_refuses_unknown_keys_and_describes_every_field():
    schema = json_schema()
    models = [schema, *schema["$defs"].values()]
    for model in models:
        assert model["additionalProperties"] is False
        for name, prop in model["properties"].items():
            assert prop.get("description"), name
    stop = schema["$defs"]["StopLoss"]["properties"]["pct"]
    assert stop["type"] == "number" and stop["exclusiveMinimum"] == 0
