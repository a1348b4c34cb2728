"""The container files, checked without a container runtime: Dockerfile, .dockerignore, compose.yaml.

No Docker engine runs here, so these tests hold what can be held: the image installs exactly what
dev.py installs, runs as a non-root user with the bot as entry point and a working health check,
and compose.yaml parses, starts what it says, and passes the bot only settings it reads.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

import dev
from bot.config import Settings

ROOT = Path(__file__).resolve().parent.parent


def instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(
        line for line in dockerfile.splitlines() if not line.lstrip().startswith("#")))
    out = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    return instructions((ROOT / "Dockerfile").read_text())


def run_commands(dockerfile: list[tuple[str, str]]) -> list[list[str]]:
    commands = []
    for keyword, rest in dockerfile:
        if keyword == "RUN":
            commands += [shlex.split(part) for part in rest.split("&&")]
    return commands


def test_the_image_installs_exactly_what_dev_py_installs(dockerfile: list[tuple[str, str]]) -> None:
    pip_steps = [c for c in run_commands(dockerfile) if c[:4] == ["python", "-m", "pip", "install"]]
    assert pip_steps == dev.install_steps("python", lock="requirements.lock", project=".")
    # Into a virtual environment, as dev.py's .venv, made before the first install.
    commands = run_commands(dockerfile)
    venv = next(i for i, c in enumerate(commands) if c[:3] == ["python", "-m", "venv"])
    assert venv < commands.index(pip_steps[0])
    env = " ".join(rest for keyword, rest in dockerfile if keyword == "ENV")
    venv_dir = commands[venv][3]
    assert f"VIRTUAL_ENV={venv_dir}" in env and f"PATH={venv_dir}/bin:$PATH" in env
    # The lock is in the image before it is installed; the project's packages before their install.
    copied = [rest.split()[:-1] for keyword, rest in dockerfile if keyword == "COPY"]
    assert ["requirements.lock"] in copied
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    for package in packages["include"]:
        assert [package.rstrip("*")] in copied, f"{package} is not copied into the image"
    assert ["pyproject.toml", "README.md"] in copied  # the build reads README.md (project.readme)


def test_the_image_is_slim_python_matching_the_lock_and_runs_the_bot_as_a_non_root_user(
    dockerfile: list[tuple[str, str]],
) -> None:
    base = next(rest for keyword, rest in dockerfile if keyword == "FROM")
    match = re.fullmatch(r"python:(\d+)\.(\d+)-slim(-\w+)?", base)
    assert match, base
    # The lock was resolved on 3.11 (its wheels are cp311); requires-python must allow the base.
    assert (int(match[1]), int(match[2])) == (3, 11)
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == ">=3.11"

    user = [rest for keyword, rest in dockerfile if keyword == "USER"]
    assert user and user[-1] not in {"root", "0"}
    assert any("useradd" in c and user[-1] in c for c in map(" ".join, run_commands(dockerfile)))
    keywords = [keyword for keyword, _ in dockerfile]
    assert keywords.index("USER") > max(i for i, k in enumerate(keywords) if k == "RUN")  # nothing runs as root after
    entry = next(rest for keyword, rest in dockerfile if keyword == "ENTRYPOINT")
    assert shlex.split(entry.replace(",", " ").strip("[]")) == ["python", "-m", "bot"]


def test_the_health_check_probes_healthz_on_the_metrics_port_the_image_turns_on(
    dockerfile: list[tuple[str, str]],
) -> None:
    check = next(rest for keyword, rest in dockerfile if keyword == "HEALTHCHECK")
    assert check.endswith('CMD ["python", "-m", "bot.healthcheck"]'), check
    env = dict(re.findall(r"(\w+)=(\S+)", " ".join(rest for keyword, rest in dockerfile if keyword == "ENV")))
    settings = Settings(_env_file=None, discord_token="t", mistral_api_key="k",
                        metrics_host=env["METRICS_HOST"], metrics_port=env["METRICS_PORT"])
    assert settings.metrics_port == 9464
    expose = [rest for keyword, rest in dockerfile if keyword == "EXPOSE"]
    assert expose == [env["METRICS_PORT"]]


def test_secrets_and_local_state_never_go_into_the_image() -> None:
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".env", ".venv", "data", ".git", "*.db"} <= ignored


def interpolate(value: str) -> str:
    """Compose's ${VAR:-default} with nothing set: the default (the bare ${VAR} would be empty)."""
    return re.sub(r"\$\{(\w+)(?::-([^}]*))?\}", lambda m: m[2] or "", value)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def bots(compose: dict) -> dict[str, dict]:
    return {name: service for name, service in compose["services"].items() if service.get("build") == "."}


def test_compose_runs_shard_groups_next_to_postgres_and_redis_with_health_checks(compose: dict) -> None:
    services = compose["services"]
    assert {"postgres", "redis"} <= set(services)
    group = bots(compose)
    assert len(group) >= 2, "the multi-process setup: several shard-group processes"
    for name, service in services.items():
        assert "healthcheck" in service, f"{name} has no health check"
        assert service.get("restart") == "unless-stopped", name
    for name in ("postgres", "redis"):
        volume = services[name]["volumes"][0].split(":")[0]
        assert volume in compose["volumes"], f"{name} keeps its data in a named volume"
    for name, service in group.items():
        assert service["env_file"] == ".env", name
        assert service["depends_on"] == {"postgres": {"condition": "service_healthy"},
                                         "redis": {"condition": "service_healthy"}}, name
        assert service["healthcheck"]["test"] == ["CMD", "python", "-m", "bot.healthcheck"], name


def test_compose_passes_the_bot_only_settings_it_reads_and_they_are_valid(compose: dict) -> None:
    fields = {name.upper() for name in Settings.model_fields}
    shards: list[tuple[int, ...]] = []
    for name, service in bots(compose).items():
        environment = {key: interpolate(str(value)) for key, value in service["environment"].items()}
        assert set(environment) <= fields, f"{name} passes settings the bot never reads"
        try:
            settings = Settings(_env_file=None, discord_token="t", mistral_api_key="k",
                                **{key.lower(): value for key, value in environment.items()})
        except ValidationError as error:
            pytest.fail(f"{name}: {error}")
        assert settings.database_url.startswith("postgresql://") and "@postgres:" in settings.database_url
        assert settings.redis_url == "redis://redis:6379/0"
        assert settings.metrics_port is not None
        shards.append(settings.shard_ids or ())
        count = settings.shard_count
    # Every shard run by exactly one process (docs/scaling.md).
    assert sorted(s for ids in shards for s in ids) == list(range(count or 0))
    # The database the bots dial is the one postgres creates, with the same password default.
    pg = compose["services"]["postgres"]["environment"]
    url = interpolate(bots(compose)["bot-0"]["environment"]["DATABASE_URL"])
    assert url == f"postgresql://{pg['POSTGRES_USER']}:{interpolate(pg['POSTGRES_PASSWORD'])}@postgres:5432/{pg['POSTGRES_DB']}"
