"""Settings for the Linarc → QBO staging platform.

Everything that differs between machines comes from environment variables (documented in
.env.example). The embedded default (no variables set) runs on SQLite, Celery's filesystem
broker and the local emulators, so `make run` needs no server.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
import django_stubs_ext
from django.core.exceptions import ImproperlyConfigured
from django_guid.integrations import CeleryIntegration

from staging.env import EnvReader

# Lets admin/queryset generics be subscripted at runtime, as the type stubs expect.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent
env = EnvReader()

VAR_DIR = Path(env.get_str("STAGING_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env.get_bool("DEBUG", True)

# Development-only fallbacks: production (DEBUG off) must set real secrets.
_DEV_SECRET_KEY = "dev-insecure-secret-key-do-not-use-in-production-0123456789abcdef"
_DEV_FERNET_KEY = "ZGV2LWluc2VjdXJlLWZpZWxkLWtleS0wMTIzNDU2Nzg="
SECRET_KEY = env.get_str("SECRET_KEY", _DEV_SECRET_KEY if DEBUG else None)
FIELD_ENCRYPTION_KEY = env.fernet_key("FIELD_ENCRYPTION_KEY", _DEV_FERNET_KEY if DEBUG else None)
if not DEBUG and (SECRET_KEY == _DEV_SECRET_KEY or FIELD_ENCRYPTION_KEY == _DEV_FERNET_KEY):
    raise ImproperlyConfigured(
        "SECRET_KEY and FIELD_ENCRYPTION_KEY must be set to real secrets when DEBUG is off."
    )
if len(SECRET_KEY) < 32:
    raise ImproperlyConfigured("Environment variable SECRET_KEY must be at least 32 characters.")

ALLOWED_HOSTS = env.get_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.get_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "csp",
    "template_partials",
    "django_celery_beat",
    "axes",
    "pgtrigger",
    "django_guid",
    "integrations",
    "staging",
]

MIDDLEWARE = [
    # First, so every later line of the request's log carries its correlation id.
    "django_guid.middleware.guid_middleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "integrations.middleware.HtmxMessagesMiddleware",
    "integrations.middleware.CurrentCompanyMiddleware",
    # Last, as django-axes asks: it turns a lockout into the response of lockout_response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "staging.urls"
WSGI_APPLICATION = "staging.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "integrations.context_processors.current_company",
            ],
        },
    },
]

_default_db = f"sqlite:///{VAR_DIR / 'staging.sqlite3'}"
DATABASE_URL = env.url(
    "DATABASE_URL", _default_db, schemes=("sqlite", "postgres", "postgresql", "pgsql")
)
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several processes (web, worker, beat) share the file: wait for locks instead of failing.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # A file, not :memory:, so worker processes started by tests see the test database.
    # One file per test session, so parallel sessions never share (and delete) one.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-staging-{os.getpid()}.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "portfolio:home"
LOGOUT_REDIRECT_URL = "login"

# --- Login throttling (django-axes: https://django-axes.readthedocs.io/) -------------------
# LOGIN_FAILURE_LIMIT failures for one username from one address lock that pair out, and
# LOGIN_IP_FAILURE_LIMIT failures from one address over all usernames lock the address, for
# LOGIN_COOLOFF_MINUTES after the last failure (a failure while locked out restarts it). A
# successful log-in clears that user's failures from that address. Support unlocks by
# deleting the Access attempt in the admin or `manage.py axes_reset_username NAME`.
# staging/login_throttling.py explains the pieces that are ours.
AUTHENTICATION_BACKENDS = [
    # First, so a locked-out request is refused before its password is even checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.get_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
LOGIN_IP_FAILURE_LIMIT = env.get_int("LOGIN_IP_FAILURE_LIMIT", 20, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env.get_int("LOGIN_COOLOFF_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_HANDLER = "staging.login_throttling.LoginThrottleHandler"
AXES_LOCKOUT_CALLABLE = "staging.login_throttling.lockout_response"
# The address failures count against: REMOTE_ADDR, or with LOGIN_TRUSTED_PROXY_COUNT=N the
# N-th X-Forwarded-For entry from the right (N reverse proxies that each append to it).
# 0 (no proxy, as docker-compose runs gunicorn) ignores the header, which a client can forge.
AXES_CLIENT_IP_CALLABLE = "staging.login_throttling.client_ip"
LOGIN_TRUSTED_PROXY_COUNT = env.get_int("LOGIN_TRUSTED_PROXY_COUNT", 0, minimum=0)

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.get_str("TIME_ZONE", "UTC")
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)
WHITENOISE_USE_FINDERS = DEBUG
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# Bad input never becomes a 500: oversized posts are refused with Django's 400.
DATA_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
DATA_UPLOAD_MAX_NUMBER_FIELDS = 12000

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # htmx reads the token from the page, not the cookie
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy (django-csp 4: https://django-csp.readthedocs.io/). Scripts and
# styles come only from our own static files: no inline <script>, no on*= handlers, no
# style="" attributes, and no eval, which is why htmx runs with allowEval off (the
# htmx-config meta in templates/base.html, https://htmx.org/docs/#security). Django's admin
# has no inline script or style either and runs under the same policy; only
# django-celery-beat's periodic-task form carries an inline script, which the policy blocks:
# the crontab help is not rewritten as you pick a schedule (the read-only "crontab
# translation" field shows instead) and the form still saves. The QBO connection page
# adds the QuickBooks sign-in origin to form-action (staging/qbo_views.py).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],  # data: for the favicon in base.html
        "connect-src": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
        "base-uri": ["'self'"],
        "object-src": ["'none'"],
    },
}
if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.get_bool("SECURE_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.get_int("SECURE_HSTS_SECONDS", 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_CONTENT_TYPE_NOSNIFF = True

# --- Celery -------------------------------------------------------------------------------
_broker_dir = VAR_DIR / "broker"
CELERY_BROKER_URL = env.url(
    "CELERY_BROKER_URL", "filesystem://", schemes=("filesystem", "redis", "rediss", "amqp")
)
# kombu's Redis transport with a fix for workers exiting on a Redis restart (staging/broker.py);
# other brokers keep their own transports.
CELERY_BROKER_TRANSPORT = (
    "staging.broker:Transport" if CELERY_BROKER_URL.startswith(("redis://", "rediss://")) else None
)
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    for _folder in ("queue", "processed", "control"):
        (_broker_dir / _folder).mkdir(parents=True, exist_ok=True)
    # Producer and consumers share one folder: the embedded default needs no broker server.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_TASK_DEFAULT_QUEUE = env.get_str("CELERY_TASK_DEFAULT_QUEUE", "celery")
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env.get_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = TIME_ZONE
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Celery's Django fixup closes the database connection around every task unless this is set;
# reconnecting cost a sync worker 5-8 % of its time (py-spy, docs/benchmarks.md).
CELERY_DB_REUSE_MAX = env.get_int("CELERY_DB_REUSE_MAX", 100, minimum=0)
SYNC_LEASE_SECONDS = env.get_int("SYNC_LEASE_SECONDS", 300, minimum=1)
# The sync's scheduler (staging/sync): how many chunks of one company may be in the workers
# at once (its lanes), and how long a lane waits for a QBO slot before it gives its worker
# process back and comes again when the realm has budget.
SYNC_LANES_PER_REALM = env.get_int("SYNC_LANES_PER_REALM", 4, minimum=1)
SYNC_LIMITER_MAX_WAIT_SECONDS = env.get_int("SYNC_LIMITER_MAX_WAIT_MS", 2000, minimum=1) / 1000

# Redis shared by workers for the per-realm QBO rate limiter; None = in-process fallback.
RATE_LIMIT_REDIS_URL = env.optional("RATE_LIMIT_REDIS_URL") or (
    CELERY_BROKER_URL if CELERY_BROKER_URL.startswith(("redis://", "rediss://")) else None
)
# Per-realm QBO traffic counters (integrations/services/qbo_traffic.py) in the same Redis.
QBO_TRAFFIC_KEY_PREFIX = "qbo-traffic"

# --- QuickBooks Online -------------------------------------------------------------------
# Defaults point at the local emulator that `make run` starts; production sets all of these.
QBO_EMULATOR_URL = env.get_str("QBO_EMULATOR_URL", "http://127.0.0.1:8765")
QBO_ENVIRONMENT = env.get_str(
    "QBO_ENVIRONMENT", f"{QBO_EMULATOR_URL}/.well-known/openid_configuration"
)
QBO_API_BASE_URL = env.optional("QBO_API_BASE_URL") or (
    None if QBO_ENVIRONMENT in ("sandbox", "production") else f"{QBO_EMULATOR_URL}/v3"
)
QBO_CLIENT_ID = env.get_str("QBO_CLIENT_ID", "emulator-client-id" if DEBUG else None)
QBO_CLIENT_SECRET = env.get_str("QBO_CLIENT_SECRET", "emulator-client-secret" if DEBUG else None)
QBO_REDIRECT_URI = env.get_str(
    "QBO_REDIRECT_URI", "http://127.0.0.1:8000/portfolio/integration/erp/qbo/callback/"
)
QBO_WEBHOOK_VERIFIER_TOKEN = env.optional("QBO_WEBHOOK_VERIFIER_TOKEN")
QBO_RATE_WINDOW_SECONDS = env.get_int("QBO_RATE_WINDOW_SECONDS", 60, minimum=1)
# Share of each published QBO limit the per-realm limiter spends (qbo_client/ratelimit.py).
# Pacing and a 50 ms jitter allowance already absorb arrival drift; lower it for more room.
QBO_RATE_MARGIN_PERCENT = env.get_int("QBO_RATE_MARGIN_PERCENT", 100, minimum=50)

# --- Linarc ------------------------------------------------------------------------------
LINARC_DEFAULT_BASE_URL = env.get_str("LINARC_DEFAULT_BASE_URL", "http://127.0.0.1:8766")

# --- Outbound requests -------------------------------------------------------------------
# Off: Linarc and QBO requests to loopback, private, link-local, multicast, reserved or other
# non-public addresses are refused before any connect (netguard/), so a base URL typed in a
# form cannot probe the server's own network. On in development for the local emulators.
# Blank means the default, as .env.example leaves it (get_bool would read "" as off).
OUTBOUND_ALLOW_PRIVATE_HOSTS = (
    env.get_bool("OUTBOUND_ALLOW_PRIVATE_HOSTS", DEBUG)
    if env.optional("OUTBOUND_ALLOW_PRIVATE_HOSTS")
    else DEBUG
)

# Loggers on which Django reports refused requests (403 role or CSRF, 400 bad Host or too
# large): staging/log_filters.py writes each as one line; 5xx keep their traceback.
# https://docs.djangoproject.com/en/5.2/ref/logging/#django-security
_REFUSAL_LOGGERS = [
    "django.request",
    "django.security.csrf",
    *(
        f"django.security.{name}"
        for name in (
            "DisallowedHost",
            "RequestDataTooBig",
            "TooManyFieldsSent",
            "TooManyFilesSent",
            "SuspiciousMultipartForm",
            "SuspiciousOperation",
        )
    ),
]
# E-mail: the daily digest and the alerts (docs/operations.md). The embedded default writes
# each message to a file in var/mail/ (Django's file backend); production sets
# EMAIL_BACKEND=django.core.mail.backends.smtp.EmailBackend and the EMAIL_* server settings.
# https://docs.djangoproject.com/en/5.2/topics/email/
EMAIL_BACKEND = env.get_str("EMAIL_BACKEND", "django.core.mail.backends.filebased.EmailBackend")
EMAIL_FILE_PATH = VAR_DIR / "mail"
EMAIL_HOST = env.get_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env.get_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env.get_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env.get_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env.get_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env.get_str("DEFAULT_FROM_EMAIL", "Linarc QBO staging <staging@localhost>")
# The Prometheus endpoint /metrics answers only a request bearing this token (staging/metrics.py).
METRICS_TOKEN = env.get_str("METRICS_TOKEN", "")
# The address the e-mails link to (they are read outside the browser session).
SITE_URL = env.get_str("SITE_URL", "http://127.0.0.1:8000").rstrip("/")

# A correlation id per request, carried into every Celery task the request sends and every
# task those send, so one click's lines can be found in the web and the worker logs alike,
# down to the QBO exchange and its intuit_tid (integrations/services/qbo_traffic.py).
# django-guid: https://django-guid.readthedocs.io/en/latest/settings.html
# A proxy may send its own X-Request-ID (nginx's $request_id); it is kept when it is a UUID
# and replaced otherwise, so nobody can write into the logs through it.
DJANGO_GUID = {
    "GUID_HEADER_NAME": "X-Request-ID",
    "VALIDATE_GUID": True,
    "RETURN_HEADER": True,
    "EXPOSE_HEADER": False,
    # The worker keeps Celery's own logging (its -l level), with the id added to its format
    # (staging/celery.py).
    "INTEGRATIONS": [CeleryIntegration()],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "line": {"format": "%(asctime)s %(levelname)s [%(correlation_id)s] %(name)s: %(message)s"}
    },
    "filters": {
        "refusals_one_line": {"()": "staging.log_filters.ClientErrorsOneLine"},
        "correlation_id": {"()": "staging.log_filters.CorrelationId"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "line",
            "filters": ["correlation_id"],
        }
    },
    "root": {"handlers": ["console"], "level": env.get_str("LOG_LEVEL", "INFO")},
    "loggers": {
        # Its own lines ("Setting GUID …") for every request and task are noise.
        "django_guid": {"level": "WARNING"},
        # Django's default config gives "django" a console handler of its own (when DEBUG)
        # besides root's, so every line came out twice; and mail_admins, which needs ADMINS
        # (unset here). Root's console is the one writer.
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        **{name: {"filters": ["refusals_one_line"]} for name in _REFUSAL_LOGGERS},
    },
}
