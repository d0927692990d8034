from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from staging.env import EnvReader

ROOT = Path(__file__).resolve().parents[1]


def test_missing_required_variable_names_it() -> None:
    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY"):
        EnvReader({}).get_str("SECRET_KEY")


@pytest.mark.parametrize(
    ("reader", "variable"),
    [
        (lambda e: e.get_bool("DEBUG", True), "DEBUG"),
        (lambda e: e.get_int("QBO_RATE_WINDOW_SECONDS", 60, minimum=1), "QBO_RATE_WINDOW_SECONDS"),
        (lambda e: e.url("DATABASE_URL", schemes=("postgres", "sqlite")), "DATABASE_URL"),
        (lambda e: e.fernet_key("FIELD_ENCRYPTION_KEY", None), "FIELD_ENCRYPTION_KEY"),
    ],
)
def test_bad_values_name_the_variable(reader, variable: str) -> None:
    bad = {
        "DEBUG": "maybe",
        "QBO_RATE_WINDOW_SECONDS": "0",
        "DATABASE_URL": "mysql://x",
        "FIELD_ENCRYPTION_KEY": "short",
    }
    with pytest.raises(ImproperlyConfigured, match=variable):
        reader(EnvReader(bad))


def test_good_values_are_parsed() -> None:
    env = EnvReader({"DEBUG": "off", "N": "12", "HOSTS": "a.example, b.example"})
    assert env.get_bool("DEBUG", True) is False
    assert env.get_int("N", 1) == 12
    assert env.get_list("HOSTS", []) == ["a.example", "b.example"]


def _start_django(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "STAGING_VAR_DIR": str(ROOT / "var"), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_start_up_fails_with_the_variable_name_on_bad_database_url() -> None:
    result = _start_django({"DATABASE_URL": "oracle://nope"})
    assert result.returncode != 0
    assert "DATABASE_URL" in result.stderr


def test_production_requires_real_secrets() -> None:
    result = _start_django({"DEBUG": "0"})
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_embedded_default_starts() -> None:
    result = _start_django({})
    assert result.returncode == 0, result.stderr


def test_production_settings_pass_check_deploy() -> None:
    from cryptography.fernet import Fernet

    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={
            "PATH": "/usr/bin:/bin",
            "STAGING_VAR_DIR": str(ROOT / "var"),
            "DEBUG": "0",
            "SECRET_KEY": "x7!" + "kq2-9vZ_mR4tLw8Bn3Yc6Hd1Jf5Gs0Pa" * 2,
            "FIELD_ENCRYPTION_KEY": Fernet.generate_key().decode(),
            "ALLOWED_HOSTS": "staging.example.com",
            "QBO_CLIENT_ID": "prod-id",
            "QBO_CLIENT_SECRET": "prod-secret",
            "QBO_ENVIRONMENT": "production",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
