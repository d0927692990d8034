from __future__ import annotations

import importlib.util
import shlex
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _module_exists(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def test_every_service_command_points_at_something_that_exists() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"web", "worker", "beat", "postgres", "redis", "qbo-emulator", "linarc-emulator"} <= set(
        services
    )
    for name, service in services.items():
        if "image" in service and "build" not in service:
            continue  # postgres / redis images
        command = service["command"]
        argv = shlex.split(command) if isinstance(command, str) else list(command)
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
