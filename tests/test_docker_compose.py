from __future__ import annotations

import importlib.util
import os
import shlex
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _module_exists(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _argv(service: dict) -> list[str]:
    """The process a service runs; for `sh -c "checks; exec CMD"`, the CMD it ends in."""
    command = service["command"]
    argv = shlex.split(command) if isinstance(command, str) else list(command)
    if argv[:2] == ["sh", "-c"]:
        script = argv[2].replace("$$", "$")  # compose's escape for a literal $
        argv = shlex.split(script.rsplit("exec ", 1)[1])
    return argv


def _environment(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    return dict(env) if isinstance(env, dict) else dict(e.split("=", 1) for e in env)


def test_every_service_command_points_at_something_that_exists() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"web", "worker", "beat", "postgres", "redis", "qbo-emulator", "linarc-emulator"} <= set(
        services
    )
    for name, service in services.items():
        if "image" in service and "build" not in service:
            continue  # postgres / redis images
        argv = _argv(service)
        if "-m" in argv:
            module = argv[argv.index("-m") + 1]
            if module == "celery":
                app = argv[argv.index("-A") + 1]
                assert _module_exists(f"{app}.celery"), name
            else:
                assert _module_exists(module), f"{name}: module {module} does not exist"
        elif argv[0] == "gunicorn":
            target = next(a for a in argv[1:] if ":" in a and not a.startswith("-"))
            assert _module_exists(target.split(":")[0]), name
        else:
            assert (ROOT / argv[-1]).exists() or (ROOT / argv[1]).exists(), name


def test_services_share_the_same_environment_variables() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    app_services = [compose["services"][n] for n in ("web", "worker", "beat")]
    for service in app_services:
        env = service.get("environment", {})
        keys = set(env) if isinstance(env, dict) else {e.split("=")[0] for e in env}
        assert {"DATABASE_URL", "CELERY_BROKER_URL", "SECRET_KEY", "FIELD_ENCRYPTION_KEY"} <= keys


def test_flower_is_optional_behind_the_monitoring_profile() -> None:
    services = _compose()["services"]
    flower = services["flower"]
    # A service with profiles is left out of a plain `docker compose up`.
    assert flower["profiles"] == ["monitoring"]
    # The worker's image and Celery app.
    assert _argv(flower)[:6] == [*_argv(services["worker"])[:5], "flower"]
    assert flower["build"] == services["worker"]["build"]
    # The deployment itself still starts without a profile.
    for name in ("web", "worker", "beat", "migrate", "postgres", "redis"):
        assert "profiles" not in services[name], name


def test_flower_is_published_on_localhost_only() -> None:
    flower = _compose()["services"]["flower"]
    assert "--port=5555" in _argv(flower)
    assert flower["ports"] == ["127.0.0.1:5555:5555"]


def test_flower_refuses_to_start_without_basic_auth_from_the_environment() -> None:
    flower = _compose()["services"]["flower"]
    # From the operator's environment, never a password in the file.
    assert _environment(flower)["FLOWER_BASIC_AUTH"] == "${FLOWER_BASIC_AUTH:-}"
    # Run the command's check (all but the final exec) as the container's shell would.
    script = flower["command"][2].replace("$$", "$")
    check = script.rsplit("exec ", 1)[0] + "echo started"
    env = {"PATH": os.environ["PATH"]}
    for value in (None, ""):
        unset = subprocess.run(
            ["sh", "-c", check],
            env=env if value is None else {**env, "FLOWER_BASIC_AUTH": value},
            capture_output=True,
            text=True,
        )
        assert unset.returncode == 1
        assert "FLOWER_BASIC_AUTH=user:password" in unset.stderr
        assert "started" not in unset.stdout
    set_ = subprocess.run(
        ["sh", "-c", check],
        env={**env, "FLOWER_BASIC_AUTH": "ops:long-password"},
        capture_output=True,
        text=True,
    )
    assert (set_.returncode, set_.stdout.strip()) == (0, "started")


def test_flower_watches_the_workers_broker() -> None:
    services = _compose()["services"]
    flower_env = _environment(services["flower"])
    worker_env = _environment(services["worker"])
    assert flower_env["CELERY_BROKER_URL"] == worker_env["CELERY_BROKER_URL"]
    assert "redis" in services["flower"]["depends_on"]
