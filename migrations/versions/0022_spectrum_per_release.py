"""a spectrum is one release's reading: spectrum's key gains release_id; view current_spectrum

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-05 03:30:00

A spectrum joins an existing source of another survey (its PLATE-MJD-FIBER names an SDSS DR14
object, ``match_survey``), so a new version of a spectra release, or another sample holding the
same spectrum, stores it for a source that already has it. Keyed (shard, source_id,
spectrum_name), the second reading could not be stored and was quarantined as 'already in the
catalog': a re-reduced spectrum never reached the catalog, against "superseded, never
overwritten". Now the key is (shard, source_id, spectrum_name, release_id), as rotation periods
and stellar masses are keyed by their release, and ``current_spectrum`` shows the spectra of
published releases only (each survey's current one). The downgrade fails, naming the key, while
two releases hold one spectrum of one source.
"""

from alembic import op

from migrations.functions import replace_primary_key

revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None


def upgrade() -> None:
    replace_primary_key("spectrum", "shard, source_id, spectrum_name, release_id")
    op.execute("""
        CREATE VIEW healcat.current_spectrum AS
        SELECT sp.*
        FROM healcat.spectrum AS sp
        JOIN healcat.release AS r ON r.release_id = sp.release_id
        WHERE r.status = 'published'""")
    op.execute("COMMENT ON VIEW healcat.current_spectrum IS "
               "'spectra read by published releases (each survey''s current one); older readings stay in spectrum'")


def downgrade() -> None:
    op.execute("DROP VIEW healcat.current_spectrum")
    replace_primary_key("spectrum", "shard, source_id, spectrum_name")
