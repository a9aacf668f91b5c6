"""docker-compose.yml: PostgreSQL with pgvector, the migrations, a scheduler and two workers on one database
URL, and the VO service on the read-only role's."""

import re
from pathlib import Path

import yaml

from catalog import db
from catalog.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
SERVICES = ("migrate", "scheduler", "worker-1", "worker-2")


def test_compose_runs_database_migrations_scheduler_and_two_workers_on_one_url():
    spec = yaml.safe_load(COMPOSE.read_text())
    services = spec["services"]
    assert set(services) == {"db", *SERVICES, "vo"}
    assert services["db"]["image"].startswith("pgvector/pgvector:")
    assert services["migrate"]["command"] == ["healcat", "db", "up"]
    assert services["migrate"]["depends_on"]["db"]["condition"] == "service_healthy"
    assert services["scheduler"]["command"] == ["healcat", "scheduler"]
    for name in ("scheduler", "worker-1", "worker-2"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert services[name]["restart"] == "unless-stopped"
    for name in ("worker-1", "worker-2"):
        assert services[name]["command"] == ["healcat", "worker"]
        assert services[name]["stop_signal"] == "SIGTERM", "a stopping worker finishes its job first"
    # the VO service: Simple Cone Search on the host's port 8008, as the read-only role
    assert services["vo"]["command"] == ["healcat", "serve", "--host", "0.0.0.0", "--port", "8008", "--no-watchdog"]
    assert services["vo"]["ports"] == ["127.0.0.1:8008:8008"]
    assert services["vo"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    # the service open to the network holds the read-only role's URL and password, not the owner's
    # (it held the owner's, for its watchdog: the workers' sweep its sessions)
    vo = services["vo"]["environment"]
    assert vo["HEALCAT_READER_PASSWORD"] == services["worker-1"]["environment"]["HEALCAT_READER_PASSWORD"]
    assert vo["HEALCAT_DATABASE_URL"] == f"postgresql://{db.READER_ROLE}@db:5432/healcat"
    assert "HEALCAT_DB_PASSWORD" not in str(vo)
    assert services["vo"]["volumes"] == []  # the workers' home (model weights) is theirs
    assert services["vo"]["depends_on"]["worker-1"]["condition"] == "service_started"  # whose watchdog sweeps
    assert all(services[s]["command"] == ["healcat", "worker"] for s in ("worker-1", "worker-2"))
    urls = {services[s]["environment"]["HEALCAT_DATABASE_URL"] for s in SERVICES}
    assert len(urls) == 1 and "@db:5432/" in next(iter(urls))
    env = services["db"]["environment"]
    # one password variable for the server and the URL: overriding the URL alone broke the stack
    assert env["POSTGRES_PASSWORD"] == "${HEALCAT_DB_PASSWORD:-healcat}"
    assert urls.pop() == f"postgresql://{env['POSTGRES_USER']}:{env['POSTGRES_PASSWORD']}@db:5432/{env['POSTGRES_DB']}"
    # the superuser's server is not published on the host (the services reach it inside the stack)
    assert "ports" not in services["db"]
    assert services["db"]["restart"] == "unless-stopped"
    # /dev/shm holds a parallel HNSW build's memory: Docker's 64 MB default failed the index jobs
    build_memory = re.fullmatch(r"\$\{HEALCAT_HNSW_BUILD_MEMORY:-(\d+)GB\}",
                                services["worker-1"]["environment"]["HEALCAT_HNSW_BUILD_MEMORY"])
    shm = re.fullmatch(r"(\d+)gb", services["db"]["shm_size"])
    assert build_memory and shm and int(shm[1]) > int(build_memory[1])
    # The scheduler queues paths that every worker must read at the same place.
    assert services["scheduler"]["environment"]["HEALCAT_RELEASE_SOURCES"] == "/releases"
    for name in SERVICES:
        targets = {v.split("}")[-1].split(":")[1] for v in services[name]["volumes"]}
        assert {"/releases", "/data"} <= targets, name



def test_every_command_and_setting_of_the_stack_is_one_healcat_knows():
    """A renamed option or variable left behind in docker-compose.yml (docker is not run here): each
    service's command parses as `healcat` parses it, and each HEALCAT_* variable it sets is read by
    the code."""
    spec = yaml.safe_load(COMPOSE.read_text())
    read = set(re.findall(r"HEALCAT_[A-Z_]+", "".join(p.read_text() for d in ("catalog", "ingest")
                                                         for p in (ROOT / d).rglob("*.py"))))
    for name, service in spec["services"].items():
        if name == "db":
            continue
        program, *argv = service["command"]
        assert program == "healcat", name
        build_parser().parse_args(argv)  # exits (SystemExit) on an option healcat does not have
        assert set(service["environment"]) - read == set(), name
