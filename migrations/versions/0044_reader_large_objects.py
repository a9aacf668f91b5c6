"""the read-only role cannot create large objects

Revision ID: 0044
Revises: 0043
Create Date: 2026-12-05 21:50:00

PostgreSQL lets every role create large objects (lo_creat, lo_create, lo_from_bytea): rows of
pg_largeobject that outlive the session, owned by their creator, which temp_file_limit does not
cap, so healcat_reader (and an astronomer's role) could write to the catalog's database and fill
its disk: `SELECT lo_from_bytea(0, convert_to(repeat('x', 10485760), 'UTF8'))` succeeded. As
0025 does for advisory locks: where the migrating role is a superuser (the embedded server's and
docker-compose's are), EXECUTE on the three is revoked from PUBLIC and granted to the role healcat
writes as; elsewhere a notice says what an administrator should run. A role that owns no large
object cannot write one (lo_open for writing, lowrite and lo_put need its ownership or UPDATE on
it), and the server-side lo_import is a superuser's already. This holds for every role of the
database, as 0025's revocation does. The downgrade grants EXECUTE to PUBLIC again (an explicit ACL
that grants what the default did).
"""

from migrations.functions import as_superuser

revision = '0044'
down_revision = '0043'
branch_labels = None
depends_on = None

CREATORS = ["lo_creat(integer)", "lo_create(oid)", "lo_from_bytea(oid, bytea)"]
NOTICE = ("healcat: not a superuser, so every role may create large objects (a reader could fill the disk); an "
          "administrator may revoke EXECUTE on lo_creat, lo_create and lo_from_bytea from PUBLIC and grant it to "
          "the role healcat writes as")


def upgrade() -> None:
    as_superuser(CREATORS, "REVOKE EXECUTE ON FUNCTION %1$s FROM PUBLIC; GRANT EXECUTE ON FUNCTION %1$s TO %2$I", NOTICE)


def downgrade() -> None:
    as_superuser(CREATORS, "GRANT EXECUTE ON FUNCTION %1$s TO PUBLIC; REVOKE EXECUTE ON FUNCTION %1$s FROM %2$I", NOTICE)
