"""The configuration reference in docs/ is the one the models generate: it never drifts."""

from __future__ import annotations

import re
from pathlib import Path

from edge_agent.config.schema import SiteConfig
from edge_agent.ops.reference import configuration_reference

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_the_checked_in_reference_is_the_generated_one() -> None:
    checked_in = (DOCS / "configuration.md").read_text(encoding="utf-8")
    assert checked_in == configuration_reference(), (
        "docs/configuration.md is out of date: run `python docs/generate.py` and commit it"
    )


def test_every_field_of_every_model_is_in_the_reference() -> None:
    text = configuration_reference()
    schema = SiteConfig.model_json_schema()
    models = {"SiteConfig": schema, **schema["$defs"]}
    for name, model in models.items():
        assert f"\n## {name}\n" in text, name
        for field in model.get("properties", {}):
            assert f"| `{field}` |" in text, f"{name}.{field}"


def test_links_point_at_sections() -> None:
    text = configuration_reference()
    sections = {h.lower() for h in re.findall(r"^## (\w+)$", text, flags=re.MULTILINE)}
    for target in re.findall(r"\]\(#(\w+)\)", text):
        assert target in sections, target


def test_the_guide_links_the_reference() -> None:
    guide = (DOCS / "integrators-guide.md").read_text(encoding="utf-8")
    assert "configuration.md" in guide
