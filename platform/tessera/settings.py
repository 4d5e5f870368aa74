"""Tessera settings: one module, every value from the environment, embedded defaults.

With no environment at all the platform runs on one laptop: SQLite and a file-system Celery
broker under var/, media under var/media. DATABASE_URL=postgres://… and CELERY_BROKER_URL=redis://…
switch to the production parts with no code change. DJANGO_ENV=production refuses to start with
DEBUG on or the embedded SECRET_KEY.
"""

import ipaddress
from pathlib import Path

import environ
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parents[2]
env = environ.Env()

DJANGO_ENV = env.str("DJANGO_ENV", default="development")
if DJANGO_ENV not in {"development", "production"}:
    raise ImproperlyConfigured(
        f"DJANGO_ENV must be 'development' or 'production', not {DJANGO_ENV!r}"
    )
PRODUCTION = DJANGO_ENV == "production"

VAR_DIR = Path(env.str("TESSERA_VAR_DIR", default=str(BASE_DIR / "var"))).resolve()

EMBEDDED_SECRET_KEY = "embedded-development-key-never-use-in-production"
SECRET_KEY = env.str("SECRET_KEY", default=EMBEDDED_SECRET_KEY)
DEBUG = env.bool("DEBUG", default=not PRODUCTION)

if PRODUCTION:
    if DEBUG:
        raise ImproperlyConfigured("DJANGO_ENV=production refuses to start with DEBUG on.")
    if SECRET_KEY == EMBEDDED_SECRET_KEY or len(SECRET_KEY) < 50:
        raise ImproperlyConfigured(
            "DJANGO_ENV=production refuses to start without its own SECRET_KEY "
            "(at least 50 random characters)."
        )

ALLOWED_HOSTS = env.list(
    "ALLOWED_HOSTS", default=[] if PRODUCTION else ["127.0.0.1", "localhost", "[::1]", "testserver"]
)
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "axes",
    "csp",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "tessera.accounts",
    "tessera.records",
    "tessera.tutoring",
    "tessera.jobs",
    "tessera.dashboards",
    "tessera.api",
    "tessera.webhooks",
    "tessera.reports",
    "tessera.interop",
    "tessera.operations",
    "django_prometheus",
    "tessera.audit",
]

MIDDLEWARE = [
    "tessera.operations.probes.ProbeMiddleware",  # first: /healthz, /readyz, /metrics
    "django_prometheus.middleware.PrometheusBeforeMiddleware",  # request metrics: from here…
    "tessera.logs.RequestIdMiddleware",  # every later line of the request names it
    "django.middleware.security.SecurityMiddleware",
    "tessera.security.ContentSecurityPolicyMiddleware",
    "tessera.limits.RequestSizeLimitMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "tessera.audit.middleware.AuditContextMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "tessera.accounts.sessions.SessionLifetimeMiddleware",
    "tessera.accounts.two_factor.TwoFactorMiddleware",
    "axes.middleware.AxesMiddleware",  # it answers a locked-out login
    "tessera.api.problems.ApiErrorMiddleware",  # an API view's unhandled exception
    "django_prometheus.middleware.PrometheusAfterMiddleware",  # …to here
]

ROOT_URLCONF = "tessera.urls"
WSGI_APPLICATION = "tessera.wsgi.application"
ASGI_APPLICATION = "tessera.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "tessera.dashboards.context_processors.organization",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'tessera.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded database is shared by the web server and a worker process: wait for locks
    # instead of failing, and take the write lock at BEGIN so two writers never deadlock.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 30, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )
    if DATABASES["default"]["NAME"] != ":memory:":
        Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # A covering index's extra columns (PostgreSQL's INCLUDE) are for production's database;
    # SQLite builds the index without them, and the warning would greet every new user.
    SILENCED_SYSTEM_CHECKS = ["models.W040"]
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Authentication -------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: a locked-out login never reaches a password
    "django.contrib.auth.backends.ModelBackend",
]
# Brute force: after AXES_FAILURE_LIMIT wrong passwords for one username from one address, that
# pair is locked out for the cool-off time. Keyed by both, so an attacker elsewhere cannot lock a
# colleague out; the address is the connection's (audit.context.client_address), so a forged
# X-Forwarded-For neither dodges the lockout nor pins it on someone else.
AXES_FAILURE_LIMIT = env.int("TESSERA_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("TESSERA_LOGIN_COOLOFF_HOURS", default=0.25)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_CLIENT_IP_CALLABLE = "tessera.audit.context.client_address"
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
# Two-factor sign-in (accounts.two_factor): the name authenticator apps show for the account.
OTP_TOTP_ISSUER = env.str("TESSERA_TWO_FACTOR_ISSUER", default="Tessera")
# Sessions end after TESSERA_SESSION_IDLE_SECONDS without a request, and in any case
# TESSERA_SESSION_MAX_SECONDS after sign-in (accounts.sessions); signing out,
# changing the password and deactivation end them too (Django's session auth hash).
SESSION_COOKIE_AGE = env.int("TESSERA_SESSION_IDLE_SECONDS", default=30 * 60)
SESSION_SAVE_EVERY_REQUEST = True
TESSERA_SESSION_MAX_SECONDS = env.int("TESSERA_SESSION_MAX_SECONDS", default=12 * 3600)
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# --- Internationalisation -------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

# --- Static files and media -----------------------------------------------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(VAR_DIR / "static")))
# Files a browser asks for at the site's root (favicon.ico), served by WhiteNoise before any
# sign-in check.
WHITENOISE_ROOT = BASE_DIR / "public"
if not PRODUCTION:
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise expects it; collectstatic fills it
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# Media is never served from a public URL: downloads go through views that check permission.
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media"))).resolve()
# Where media, reports, the feature cache and model bundles live (tessera.storage): "local"
# (MEDIA_ROOT, TESSERA_FEATURE_CACHE, MLCORE_MODELS_DIR) or "s3", one S3-compatible bucket that
# every host shares (MLCORE_MODELS_DIR then keeps this host's copy of the bundles it serves).
# The bucket's settings are django-storages' own; credentials come from AWS_ACCESS_KEY_ID and
# AWS_SECRET_ACCESS_KEY, or the host's role, as boto3 finds them.
TESSERA_STORAGE = env.str("TESSERA_STORAGE", default="local")
AWS_STORAGE_BUCKET_NAME = env.str("AWS_STORAGE_BUCKET_NAME", default="")
AWS_S3_ENDPOINT_URL = env.str("AWS_S3_ENDPOINT_URL", default=None)  # MinIO, Ceph, moto…
AWS_S3_REGION_NAME = env.str("AWS_S3_REGION_NAME", default=None)

# Uploads: every entry point validates against these before anything is stored.
TESSERA_MAX_UPLOAD_BYTES = env.int("TESSERA_MAX_UPLOAD_BYTES", default=256 * 1024 * 1024)
TESSERA_MAX_TEXT_BYTES = env.int("TESSERA_MAX_TEXT_BYTES", default=2 * 1024 * 1024)
TESSERA_MAX_AUDIO_SECONDS = env.float("TESSERA_MAX_AUDIO_SECONDS", default=30 * 60)
# A zipped DICOM series: at most this many entries, unpacking to at most this many bytes.
TESSERA_ZIP_MAX_ENTRIES = env.int("TESSERA_ZIP_MAX_ENTRIES", default=2000)
TESSERA_ZIP_MAX_TOTAL_BYTES = env.int("TESSERA_ZIP_MAX_TOTAL_BYTES", default=512 * 1024 * 1024)
# DICOM is de-identified on ingest (records.deidentify): this key derives each patient's date
# shift and the stand-in UIDs. Changing it changes them for files uploaded afterwards.
TESSERA_DEIDENTIFICATION_KEY = env.str("TESSERA_DEIDENTIFICATION_KEY", default=SECRET_KEY)
# Media of an organization that turns on encryption at rest is stored as Fernet tokens under
# the first of these keys (comma-separated, each from `Fernet.generate_key()`); every key listed
# still decrypts, so a new key goes first and `manage.py sync_media_encryption` re-encrypts.
TESSERA_MEDIA_ENCRYPTION_KEYS = env.list("TESSERA_MEDIA_ENCRYPTION_KEYS", default=[])
for _key in TESSERA_MEDIA_ENCRYPTION_KEYS:
    try:
        Fernet(_key)
    except ValueError as error:
        raise ImproperlyConfigured(
            "TESSERA_MEDIA_ENCRYPTION_KEYS holds a key that is not a Fernet key (32 url-safe "
            "base64-encoded bytes, as `Fernet.generate_key()` makes)"
        ) from error
# The DICOM listener (manage.py dicom_listener): its AE title, and where it listens.
TESSERA_DICOM_AE_TITLE = env.str("TESSERA_DICOM_AE_TITLE", default="TESSERA")
TESSERA_DICOM_HOST = env.str("TESSERA_DICOM_HOST", default="127.0.0.1")
TESSERA_DICOM_PORT = env.int("TESSERA_DICOM_PORT", default=11112)
# Results sent to a PACS or a FHIR server (interop.deliveries): attempts, the first wait between
# them (doubling, at most an hour), and how long one HTTP request (STOW-RS, FHIR) may take.
TESSERA_DELIVERY_MAX_ATTEMPTS = env.int("TESSERA_DELIVERY_MAX_ATTEMPTS", default=8)
TESSERA_DELIVERY_BACKOFF_SECONDS = env.float("TESSERA_DELIVERY_BACKOFF_SECONDS", default=30.0)
TESSERA_DELIVERY_TIMEOUT_SECONDS = env.float("TESSERA_DELIVERY_TIMEOUT_SECONDS", default=60.0)
# Django spools uploads above this size to a temporary file instead of memory, except DICOM
# and zipped series: their originals stay in memory until de-identified (records.upload_handlers).
FILE_UPLOAD_MAX_MEMORY_SIZE = 4 * 1024 * 1024
FILE_UPLOAD_HANDLERS = [
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "tessera.records.upload_handlers.OriginalsInMemoryUploadHandler",
]
# A request body larger than the largest upload (plus room for its form fields) is refused
# from its Content-Length before it is read; a body without files may hold at most 1 MiB.
TESSERA_MAX_REQUEST_BYTES = TESSERA_MAX_UPLOAD_BYTES + 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024

# --- Celery ---------------------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://localhost//")
EMBEDDED_BROKER = CELERY_BROKER_URL.startswith("filesystem://")
# kombu's file-system transport, with messages written whole before a worker can read them.
CELERY_BROKER_TRANSPORT = "tessera.embedded_broker:Transport" if EMBEDDED_BROKER else None
CELERY_BROKER_DIR = VAR_DIR / "celery" / "broker"
if EMBEDDED_BROKER:
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_BROKER_DIR / "queue"),
        "data_folder_out": str(CELERY_BROKER_DIR / "queue"),
        "control_folder": str(CELERY_BROKER_DIR / "control"),
        "store_processed": False,
        "polling_interval": 0.2,
    }
else:
    # Longer than the longest job: a message is redelivered only when its worker is gone (a
    # job's lease keeps a redelivered message from running it twice all the same). Workers
    # look for such messages every CELERY_UNACKED_RESTORE_SECONDS.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=6 * 3600),
        "unacked_restore_interval": env.int("CELERY_UNACKED_RESTORE_SECONDS", default=60),
        "unacked_restore_throttle": 1,
    }
CELERY_RESULT_BACKEND = env.str(
    "CELERY_RESULT_BACKEND",
    default=f"file://{VAR_DIR / 'celery' / 'results'}" if EMBEDDED_BROKER else CELERY_BROKER_URL,
)
if EMBEDDED_BROKER:
    # The file-system transport and result store expect their folders to exist.
    for folder in ("queue", "control"):
        (CELERY_BROKER_DIR / folder).mkdir(parents=True, exist_ok=True)
if CELERY_RESULT_BACKEND.startswith("file://"):
    Path(CELERY_RESULT_BACKEND.removeprefix("file://")).mkdir(parents=True, exist_ok=True)
CELERY_TASK_ALWAYS_EAGER = False

# --- Metrics --------------------------------------------------------------------------------
# /metrics (operations.metrics) answers a scraper presenting this bearer token, or connecting
# from one of these networks (comma-separated CIDRs, e.g. 10.0.0.0/8); neither set: metrics off.
TESSERA_METRICS_TOKEN = env.str("TESSERA_METRICS_TOKEN", default="")
TESSERA_METRICS_NETWORKS = env.list("TESSERA_METRICS_NETWORKS", default=[])
for _network in TESSERA_METRICS_NETWORKS:
    try:
        ipaddress.ip_network(_network)
    except ValueError as _error:
        raise ImproperlyConfigured(
            f"TESSERA_METRICS_NETWORKS: {_network!r} is not a network (e.g. 10.0.0.0/8)"
        ) from _error

# --- Telemetry (optional, off by default; tessera.telemetry scrubs both) ---------------------
# OpenTelemetry traces to an OTLP/HTTP collector (e.g. http://otel-collector:4318), and errors
# to Sentry.
TESSERA_OTEL_ENDPOINT = env.str("TESSERA_OTEL_ENDPOINT", default="")
TESSERA_OTEL_SERVICE = env.str("TESSERA_OTEL_SERVICE", default="tessera")
TESSERA_SENTRY_DSN = env.str("TESSERA_SENTRY_DSN", default="")

# --- Cache ----------------------------------------------------------------------------------
# It holds the API's rate-limit counters, which every web process of every host must share: a
# limit counted per process would let N processes allow N times the rate. Redis where the
# broker is Redis (TESSERA_CACHE_URL names another), else a folder under var/ that the
# processes of the one embedded host share. The prefix keeps installations that share a Redis
# apart.
TESSERA_CACHE_URL = env.str(
    "TESSERA_CACHE_URL", default="" if EMBEDDED_BROKER else CELERY_BROKER_URL
)
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": TESSERA_CACHE_URL}
        if TESSERA_CACHE_URL
        else {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache" / "django"),
        }
    )
    | {"KEY_PREFIX": env.str("TESSERA_CACHE_KEY_PREFIX", default="tessera")}
}
# The sweeper (celery beat) publishes jobs unpublished after the grace period, re-publishes
# queued jobs whose message seems lost and takes back jobs whose worker's lease ran out.
TESSERA_JOB_PUBLISH_GRACE = env.int("TESSERA_JOB_PUBLISH_GRACE", default=30)
# A worker renews its job's lease every third of this while it works (a heartbeat).
TESSERA_JOB_LEASE_SECONDS = env.int("TESSERA_JOB_LEASE_SECONDS", default=60)
TESSERA_JOB_STALE_AFTER = env.int("TESSERA_JOB_STALE_AFTER", default=300)
# No job is preprocessing or running longer than this after it started: the sweeper fails it.
TESSERA_JOB_MAX_SECONDS = env.int("TESSERA_JOB_MAX_SECONDS", default=30 * 60)
TESSERA_SWEEP_EVERY = env.float("TESSERA_SWEEP_EVERY", default=60.0)
# Micro-batching on the GPU queue: up to N cases per forward pass, waiting at most T ms for them.
TESSERA_BATCH_MAX_CASES = env.int("TESSERA_BATCH_MAX_CASES", default=16)
TESSERA_BATCH_WAIT_MS = env.float("TESSERA_BATCH_WAIT_MS", default=50.0)
# torch's threads in each process of a cpu or gpu worker; 0: this host's cores divided by the
# worker's processes. Where workers share a host's cores (a cpu worker beside a gpu worker that
# runs on the CPU, or a container limited to fewer cores than its host has), give each its
# share: torch's threads spin while they wait, and outnumbering the cores they slow inference
# about 4-fold (bench/pipeline.py).
TESSERA_TORCH_THREADS = env.int("TESSERA_TORCH_THREADS", default=0)
# Transient errors (out of memory) retry after this many seconds, doubling each attempt.
TESSERA_RETRY_BACKOFF_SECONDS = env.float("TESSERA_RETRY_BACKOFF_SECONDS", default=5.0)
# Learning from feedback: a training run needs this many confirmed or corrected results.
TESSERA_TRAINING_MIN_CASES = env.int("TESSERA_TRAINING_MIN_CASES", default=20)
# Suggestions a school's teachers must have judged before a run teaches its tutoring head.
TESSERA_TUTORING_MIN_VERDICTS = env.int("TESSERA_TUTORING_MIN_VERDICTS", default=30)
TESSERA_TRAINING_EPOCHS = env.int("TESSERA_TRAINING_EPOCHS", default=10)
TESSERA_TRAINING_LEARNING_RATE = env.float("TESSERA_TRAINING_LEARNING_RATE", default=3e-4)
# A run still `running` after this long lost its worker, and may be taken again.
TESSERA_TRAINING_TIMEOUT = env.int("TESSERA_TRAINING_TIMEOUT", default=6 * 3600)
# Webhooks: each delivery waits this long for the receiver, and is tried up to this many times,
# waiting the backoff (doubling) between attempts.
TESSERA_WEBHOOK_TIMEOUT_SECONDS = env.float("TESSERA_WEBHOOK_TIMEOUT_SECONDS", default=10.0)
TESSERA_WEBHOOK_MAX_ATTEMPTS = env.int("TESSERA_WEBHOOK_MAX_ATTEMPTS", default=8)
TESSERA_WEBHOOK_BACKOFF_SECONDS = env.float("TESSERA_WEBHOOK_BACKOFF_SECONDS", default=30.0)
# Each task goes to its queue by tessera.celery.TASK_QUEUES.
CELERY_BEAT_SCHEDULE = {
    "sweep-stale-jobs": {
        "task": "tessera.jobs.sweep",
        "schedule": TESSERA_SWEEP_EVERY,
    },
    "resend-lost-webhook-deliveries": {
        "task": "tessera.webhooks.sweep",
        "schedule": TESSERA_SWEEP_EVERY,
    },
    "republish-lost-reports": {
        "task": "tessera.reports.sweep",
        "schedule": TESSERA_SWEEP_EVERY,
    },
    "resume-lost-transcriptions": {
        "task": "tessera.records.sweep",
        "schedule": TESSERA_SWEEP_EVERY,
    },
    "resend-lost-result-deliveries": {
        "task": "tessera.interop.sweep_deliveries",
        "schedule": TESSERA_SWEEP_EVERY,
    },
}
# Beat keeps its schedule in the database (django-celery-beat): the sweepers above, and the
# weekly reports organizations schedule, which an admin can see and pause in the admin site.
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# A report still `rendering` after this long lost its worker, and is rendered again.
TESSERA_REPORT_STALE_AFTER = env.int("TESSERA_REPORT_STALE_AFTER", default=600)

# --- REST API -------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "tessera.api.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",  # the browser, with CSRF
    ],
    "DEFAULT_PERMISSION_CLASSES": ["tessera.api.access.RoleInOrganization"],
    "DEFAULT_PAGINATION_CLASS": "tessera.api.pagination.Cursor",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "tessera.api.problems.problem_exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "tessera.api.parsers.JSONParser",  # refuses JSON nested too deep to parse safely
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_THROTTLE_CLASSES": [
        "tessera.api.authentication.TokenRateThrottle",
        "rest_framework.throttling.AnonRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "user": env.str("TESSERA_API_RATE", default="6000/hour"),
        "anon": env.str("TESSERA_API_ANON_RATE", default="120/hour"),
    },
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Tessera API",
    "DESCRIPTION": (
        "Records, uploads, analyses and results for hospital and school integrations. Every "
        "error is application/problem+json (RFC 9457). Results are suggestions for a "
        "professional to confirm."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",  # self-hosted: no CDN
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "tessera.api.schema.add_problem_responses",
        "tessera.api.schema.blank_or_valid",
    ],
    "ENUM_NAME_OVERRIDES": {
        "MediaKindEnum": "tessera.records.models.MediaKind",
        "OrganizationKindEnum": "tessera.accounts.policy.OrganizationKind",
        "FeedbackKindEnum": "tessera.jobs.models.Feedback.Kind",
    },
}

# --- Model serving --------------------------------------------------------------------------
MLCORE_DEVICE = env.str("MLCORE_DEVICE", default="auto")
MLCORE_MODELS_DIR = Path(env.str("MLCORE_MODELS_DIR", default=str(VAR_DIR / "models"))).resolve()
# Preprocessed inputs, by content: a job's files are decoded once per model version.
TESSERA_FEATURE_CACHE = Path(
    env.str("TESSERA_FEATURE_CACHE", default=str(VAR_DIR / "cache" / "features"))
).resolve()

# Transcription (records.transcription, on the `speech` queue): a recording is transcribed this
# many seconds at a time, one task each, so that a long one never holds the queue; the speech
# model (MLCORE_SPEECH_MODEL: a local CTranslate2 Whisper directory; default the shipped
# tiny.en) uses this many CPU threads (0: CTranslate2's default).
TESSERA_SPEECH_SPAN_SECONDS = env.float("TESSERA_SPEECH_SPAN_SECONDS", default=30.0)
TESSERA_SPEECH_THREADS = env.int("TESSERA_SPEECH_THREADS", default=0)
# An analysis of a recording whose transcript is still being made waits for it, this long at
# most after it was requested; then it runs without what the recording says.
TESSERA_TRANSCRIPT_WAIT_SECONDS = env.float("TESSERA_TRANSCRIPT_WAIT_SECONDS", default=120.0)

# --- Security -------------------------------------------------------------------------------
# How many reverse proxies of ours stand in front of the web server. 0: the connection's peer is
# the client, and X-Forwarded-For is ignored (a client can write anything there). Used for the
# audit log's addresses and the login lockout.
TESSERA_TRUSTED_PROXIES = env.int("TESSERA_TRUSTED_PROXIES", default=0)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# Only what Tessera serves itself: no CDN, no inline script or style (the pages have none).
# security.ContentSecurityPolicyMiddleware relaxes styles for the admin and the API docs only.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "media-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
SESSION_COOKIE_SECURE = PRODUCTION
CSRF_COOKIE_SECURE = PRODUCTION
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
if PRODUCTION:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Every line carries the request's id (X-Request-ID) and, in a worker, the task's and the job's
# (tessera.logs); `json`: one JSON object per line, for a log shipper.
TESSERA_LOG_FORMAT = env.str("TESSERA_LOG_FORMAT", default="json" if PRODUCTION else "text")
if TESSERA_LOG_FORMAT not in {"json", "text"}:
    raise ImproperlyConfigured(
        f"TESSERA_LOG_FORMAT must be 'json' or 'text', not {TESSERA_LOG_FORMAT!r}"
    )
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "tessera.logs.ContextFilter"}},
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {"()": "tessera.logs.JsonLinesFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": TESSERA_LOG_FORMAT,
            "filters": ["context"],
        }
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # django-axes announces its version at every start, faster-whisper every span it hears:
    # not news to anyone.
    "loggers": {"axes.apps": {"level": "WARNING"}, "faster_whisper": {"level": "WARNING"}},
}
