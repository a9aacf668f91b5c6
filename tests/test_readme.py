"""The README tells the truth: its SQL runs against the catalog and its commands parse and run."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import sqlalchemy as sa

from catalog.cli import main

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def _statements() -> list[str]:
    statements = []
    for block in _blocks("sql"):
        text = "\n".join(line.split("--")[0] for line in block.splitlines())
        statements += [s.strip() for s in text.split(";") if s.strip()]
    return statements


def test_readme_has_the_sql_an_astronomer_types():
    statements = _statements()
    assert any("healcat.cone_search(160.9415, 0.7968, 600.0)" in s for s in statements)
    assert any("healcat.similar_sources(" in s for s in statements)


@pytest.mark.parametrize("statement", [s for s in _statements() if "..." not in s])
def test_readme_sql_runs(engine, catalog, per_object, statement):
    with engine.connect() as conn:
        rows = conn.execute(sa.text(statement.replace(":", r"\:"))).all()
    assert rows, "README examples show real answers"


@pytest.mark.parametrize("command", [line for block in _blocks("sh") for line in block.splitlines()
                                     if line.startswith("healcat ") and "--help" not in line
                                     and "db psql" not in line])  # psql is interactive
def test_readme_commands_run(catalog, command, capsys):
    argv = shlex.split(command.split("#")[0])[1:]
    assert main(argv) == 0
    assert capsys.readouterr().out.strip()
