"""The configuration reference and JSON Schema, generated from the pydantic models.

``python -m posactors.config_reference > docs/configuration.md`` writes the reference
(every key: type, default, meaning, an example); ``posactors config schema`` prints the
JSON Schema editors validate YAML against. Meanings live in :mod:`posactors.config_meanings`,
keyed by ``Model.field`` (``*.field`` for the order settings every rule shares); a field with
none falls back to its pydantic ``description``. tests/test_config_reference.py fails when
the committed file and the generated one differ.
"""

from __future__ import annotations

import copy
import json
import sys
from decimal import Decimal
from typing import Any

from posactors.config_meanings import MEANINGS, SECTION_EXAMPLES
from posactors.policy import Config


def _number(default: Any) -> Any:
    if isinstance(default, str):
        try:
            value = Decimal(default)
        except ArithmeticError:
            return default
        return int(value) if value == value.to_integral_value() else float(value)
    return default


def _tidy(node: Any) -> Any:
    """Decimals are numbers in the file: drop the string branch pydantic adds beside them."""
    if isinstance(node, dict):
        node = {k: _tidy(v) for k, v in node.items() if k != "title"}
        branches = node.get("anyOf")
        if branches and any(b.get("type") == "number" for b in branches):
            branches = [b for b in branches if b != {"type": "string"}]
            node["anyOf"] = branches
            if len(branches) == 1:
                node.pop("anyOf")
                node.update(branches[0])
            if "default" in node:
                node["default"] = _number(node["default"])
        return node
    if isinstance(node, list):
        return [_tidy(v) for v in node]
    return node


def meaning(model: str, field: str, schema: dict[str, Any]) -> tuple[str, str]:
    """(meaning, example) of a field; the pydantic description when none is written here."""
    found = MEANINGS.get(f"{model}.{field}") or MEANINGS.get(f"*.{field}")
    if found:
        return found
    return (schema.get("description", ""), "")


def json_schema() -> dict[str, Any]:
    """The configuration's JSON Schema with a description on every field."""
    schema = _tidy(copy.deepcopy(Config.model_json_schema()))
    models = {"Config": schema, **schema.get("$defs", {})}
    for name, model in models.items():
        for field, prop in model.get("properties", {}).items():
            text, example = meaning(name, field, prop)
            if text:
                prop["description"] = text
            if example:
                prop.setdefault("examples", [example])
    schema["title"] = "posactors configuration"
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def _ref(node: dict[str, Any]) -> str | None:
    if "$ref" in node:
        return node["$ref"].rsplit("/", 1)[-1]
    for branch in node.get("anyOf", []):
        if "$ref" in branch:
            return branch["$ref"].rsplit("/", 1)[-1]
    return None


def _type(node: dict[str, Any], defs: dict[str, Any]) -> str:
    if "enum" in node:
        return ", ".join(f"`{v}`" for v in node["enum"])
    if "const" in node:
        return f"`{node['const']}`"
    if "anyOf" in node:
        kinds = [_type(b, defs) for b in node["anyOf"] if b.get("type") != "null"]
        nullable = any(b.get("type") == "null" for b in node["anyOf"])
        return " or ".join(kinds) + (" or null" if nullable else "")
    if "$ref" in node:
        return "section"
    kind = node.get("type", "any")
    if kind == "array":
        item = node.get("items", {})
        return "list of " + ("sections" if _ref(item) else _type(item, defs))
    if kind == "object":
        return "mapping"
    if node.get("format") == "time":
        return "time (HH:MM)"
    bounds = []
    for key, sign in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="),
                      ("exclusiveMaximum", "<")):  # fmt: skip
        if key in node:
            bounds.append(f"{sign} {_number(str(node[key]))}")
    return kind + (f" ({', '.join(bounds)})" if bounds else "")


def _default(node: dict[str, Any], required: bool) -> str:
    if required:
        return "required"
    if "default" not in node:
        return "-"
    value = node["default"]
    if value is None:
        return "none (off)" if _ref(node) else "none"
    if isinstance(value, dict) and value:
        return "(the keys' defaults)"
    return f"`{json.dumps(value)}`"


def rows(schema: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """(key path, type, default, meaning, example) for every key, depth first."""
    defs = schema.get("$defs", {})
    out: list[tuple[str, str, str, str, str]] = []

    def walk(model_name: str, model: dict[str, Any], prefix: str) -> None:
        required = set(model.get("required", []))
        for field, prop in model.get("properties", {}).items():
            path = f"{prefix}{field}"
            text, example = meaning(model_name, field, prop)
            out.append((path, _type(prop, defs), _default(prop, field in required), text, example))
            ref = _ref(prop)
            if ref is None and prop.get("type") == "array":
                ref, path = _ref(prop.get("items", {})), f"{path}[]"
            if ref is not None:
                walk(ref, defs[ref], f"{path}.")

    walk("Config", schema, "")
    return out


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown() -> str:
    """docs/configuration.md."""
    schema = json_schema()
    lines = [
        "# Configuration reference",
        "",
        "<!-- generated by `python -m posactors.config_reference > docs/configuration.md`;",
        "     do not edit by hand: tests/test_config_reference.py compares it with the code -->",
        "",
        "A configuration is one YAML file. Three layers, later wins: the defaults below, the",
        "file, then `overrides: {SYMBOL: {...}}` deep-merged into `exits` for that symbol. A",
        "rule that is absent (or `null`) is off. Percentages are percent (`8` is 8%), exact",
        "decimals. An unknown key or a bad value stops every command before it starts, with",
        "the file, the key, the value and what was expected (exit 2). Check a file with",
        "`.venv/bin/posactors config check FILE --show` (the effective policy per symbol);",
        "`.venv/bin/posactors config schema` prints the JSON Schema of this page, for editors",
        "(e.g. VS Code's YAML extension: `# yaml-language-server: $schema=posactors.schema.json`).",
        "",
        "Gains are measured from the average entry price: `gain% = (price - entry) / entry * 100`",
        "for a long, mirrored for a short. The *effective stop* is the highest of the",
        "`stop_loss`, `staircase` and `trailing` levels; it never moves down. See",
        "[rules.md](rules.md) for the exact semantics.",
        "",
        "## Every key",
        "",
        "| key | type | default | meaning | example |",
        "| --- | --- | --- | --- | --- |",
    ]
    for path, kind, default, text, example in rows(schema):
        ex = f"`{example}`" if example else ""
        lines.append(
            f"| `{path}` | {_cell(kind)} | {_cell(default)} | {_cell(text)} | {_cell(ex)} |"
        )
    lines += ["", "## Examples", ""]
    for section, example in SECTION_EXAMPLES.items():
        lines += [f"`{section}`:", "", "```yaml", example, "```", ""]
    return "\n".join(lines)


def main() -> int:
    sys.stdout.write(markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
