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


@pytest.fixture(scope="module")
def kepler(engine, catalog):
    """Kepler x TGAS, which the README's matches at an epoch ingest first (their proper motions)."""
    from ingest.load import ingest_release

    assert "healcat ingest kepler_mcquillan_tgas_prot" in README
    return ingest_release("kepler_mcquillan_tgas_prot", engine)


def test_readme_has_the_sql_an_astronomer_types():
    statements = _statements()
    assert any("healcat.cone_search(160.9415, 0.7968, 600.0)" in s for s in statements)
    assert any("healcat.similar_sources(" in s for s in statements)


#: Statements whose answer needs more than the README's catalog: the cluster and star ages a trained
#: gyrochronology model (tests/test_science_tasks.py runs them), what changed objects changed a survey's
#: second release (tests/test_release_diff.py runs them).
ELSEWHERE = ("current_cluster_age", "chronoflow-gyro", "change_fields")


@pytest.mark.parametrize("statement", [s for s in _statements() if "..." not in s and not any(e in s for e in ELSEWHERE)])
def test_readme_sql_runs(engine, catalog, per_object, kepler, statement):
    with engine.connect() as conn:
        rows = conn.execute(sa.text(statement.replace(":", r"\:"))).all()
    assert rows, "README examples show real answers"


@pytest.mark.parametrize("command", [line for block in _blocks("sh") for line in block.splitlines()
                                     if line.startswith("healcat ") and "--help" not in line
                                     and "db psql" not in line  # psql is interactive
                                     and not line.startswith("healcat serve")])  # runs until stopped: test_service
def test_readme_commands_run(catalog, kepler, command, capsys):
    argv = shlex.split(command.split("#")[0])[1:]
    assert main(argv) == 0
    assert capsys.readouterr().out.strip()


def found(column) -> int:
    """How many rows of a match column are not masked: matched."""
    return int((~column.mask).sum())


def test_the_readmes_matches_at_an_epoch_find_what_it_says(kepler):
    """The examples at an epoch matched Gaia bright stars, which have no proper motions: the epoch
    changed nothing. The counts the README gives are the catalog's."""
    from astropy.table import Table

    from catalog import crossmatch, crossmatch_releases
    from ingest.mapping import data_dir

    release = "kepler-mcquillan/2014-x-tgas"
    at = crossmatch_releases(release, "gaia/dr3-bright-g10", 0.02, at_epoch_jyear=2016.0)
    stale = crossmatch_releases(release, "gaia/dr3-bright-g10", 0.02)
    assert (found(at["source_id_b"]), found(stale["source_id_b"])) == (75, 35)
    assert "75 stars match" in README and "without the epoch 35" in README
    table = Table.read(data_dir() / "kepler_mcquillan_tgas_prot" / "1473873638462A.csv", format="ascii.csv")
    kwargs = dict(release=release, ra_col="ra_ep2000", dec_col="dec_ep2000")
    at, stale = crossmatch(table, 0.1, at_epoch_jyear=2000.0, **kwargs), crossmatch(table, 0.1, **kwargs)
    assert (len(table), found(at["source_id"]), found(stale["source_id"])) == (1303, 1301, 356)
    assert "1,301 of 1,303 rows match within 0.1 arcsec; without --at-epoch, 15 years of motion leave 356" in README
