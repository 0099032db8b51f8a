"""The record-field tables in docs/*.md are the ones generated from the schemas that loading checks against."""

from __future__ import annotations

import pytest

from turngym.registration import ENVS
from turngym.tasks import schema_docs
from turngym.tasks.pack import family_schema


def test_docs_equal_generated_tables():
    if not all(any(e.installed() for e in ENVS if e.family == f) for f in schema_docs.DOCS):
        pytest.skip("every family's extra is needed to import its schema")
    if not schema_docs.DOCS_DIR.is_dir():
        pytest.skip("the docs folder is not installed with the package")
    for path, text in schema_docs.generate().items():
        assert path.read_text(encoding="utf-8") == text, (
            f"{path} is stale: run python -m turngym.tasks.schema_docs"
        )


def test_table_lists_every_field_of_the_schema():
    schema = family_schema("embodied")
    table = schema_docs.table(schema)
    for name, spec in schema.fields.items():
        row = next(line for line in table.splitlines() if line.startswith(f"| `{name}` |"))
        assert f"| {spec.type_text()} | {'yes' if spec.required else 'no'} |" in row
    assert "| `task_id` | string | yes |" in table


def test_render_needs_markers():
    with pytest.raises(ValueError, match="no '<!-- record fields: embodied"):
        schema_docs.render("# doc without a table\n", "embodied", family_schema("embodied"))


def test_check_flags_a_hand_edited_table(tmp_path, capsys):
    if not all(any(e.installed() for e in ENVS if e.family == f) for f in schema_docs.DOCS):
        pytest.skip("every family's extra is needed to import its schema")
    for name in set(schema_docs.DOCS.values()):
        (tmp_path / name).write_text(
            (schema_docs.DOCS_DIR / name).read_text(encoding="utf-8"), encoding="utf-8"
        )
    doc = tmp_path / "embodied.md"
    doc.write_text(doc.read_text().replace("| `house_seed` | integer |", "| `house_seed` | string |"))
    assert schema_docs.main(["--docs", str(tmp_path), "--check"]) == 1
    assert schema_docs.main(["--docs", str(tmp_path)]) == 0
    assert schema_docs.main(["--docs", str(tmp_path), "--check"]) == 0
    assert "| `house_seed` | integer |" in doc.read_text()
