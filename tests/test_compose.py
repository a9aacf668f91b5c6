"""docker-compose.yml: PostgreSQL with pgvector, the migrations, then a worker, on one database URL."""

from pathlib import Path

import yaml

COMPOSE = Path(__file__).resolve().parents[1] / "docker-compose.yml"


def test_compose_runs_database_migrations_and_a_worker_on_one_url():
    spec = yaml.safe_load(COMPOSE.read_text())
    services = spec["services"]
    assert services["db"]["image"].startswith("pgvector/pgvector:")
    assert services["migrate"]["command"] == ["healcat", "db", "up"]
    assert services["worker"]["command"] == ["healcat", "worker"]
    assert services["migrate"]["depends_on"]["db"]["condition"] == "service_healthy"
    assert services["worker"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    urls = {services[s]["environment"]["HEALCAT_DATABASE_URL"] for s in ("migrate", "worker")}
    assert len(urls) == 1 and "@db:5432/" in urls.pop()
    env = services["db"]["environment"]
    assert f"{env['POSTGRES_USER']}:{env['POSTGRES_PASSWORD']}@db:5432/{env['POSTGRES_DB']}" in \
        services["worker"]["environment"]["HEALCAT_DATABASE_URL"]
