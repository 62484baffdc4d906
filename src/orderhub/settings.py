"""Every setting of SPEC §2, read once from the environment (and `.env`).

`load_settings()` is called by the CLI; everything else receives the `Settings` object.
A wrong, missing or contradictory setting raises `SettingsError` whose message is one
line naming the variable.
"""

from __future__ import annotations

import atexit
import ipaddress
import os
import re
import shutil
import tempfile
from email.utils import parseaddr
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# RFC 7518 §3.2: an HS256 key is at least as long as the hash (256 bits).
MIN_JWT_SECRET_BYTES = 32
_ADDRESS = re.compile(r"^[^@\s<>\"(),;:]+@[^@\s<>\"(),;:\[\]]+$")


def _is_address(value: str) -> bool:
    """`local@domain` or `Name <local@domain>`, on one line."""
    if any(c in value for c in "\r\n\x00"):
        return False
    _name, address = parseaddr(value)
    return bool(address) and _ADDRESS.match(address) is not None


class SettingsError(Exception):
    """A setting is wrong, missing or contradictory; the message names the variable."""


def _check_public_key(pem: str) -> None:
    from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, EllipticCurvePublicKey
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        key = load_pem_public_key(pem.replace("\\n", "\n").encode())
    except (ValueError, TypeError):
        raise ValueError("jwt_public_key: not a PEM public key") from None
    if isinstance(key, RSAPublicKey):
        return
    if isinstance(key, EllipticCurvePublicKey) and isinstance(key.curve, SECP256R1):
        return
    raise ValueError("jwt_public_key: must be an RSA (RS256) or EC P-256 (ES256) public key")


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        frozen=True,
    )

    host: str = "127.0.0.1"
    port: int = Field(default=3000, ge=1, le=65535)
    data_dir: Path = Path("./data")
    database_url: str = ""
    aws_region: str = "us-east-1"  # AWS_REGION: the DynamoDB store's region

    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    jwt_secret: str = ""
    jwt_public_key: str = ""
    jwt_jwks_url: str = ""
    jwt_audience: str = ""
    jwt_issuer: str = ""
    jwt_leeway_seconds: int = Field(default=30, ge=0, le=300)

    rate_limit_max: int = Field(default=100, ge=1)
    rate_limit_window_seconds: int = Field(default=900, ge=1)
    rate_limit_by: Literal["ip", "credential"] = "ip"
    redis_url: str = ""
    trusted_proxies: Annotated[list[ipaddress.IPv4Network | ipaddress.IPv6Network], NoDecode] = (
        Field(default_factory=list)
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_body_bytes: int = Field(default=1_048_576, ge=1)
    idempotency_ttl_hours: int = Field(default=24, ge=1)

    payment_provider: Literal["sandbox", "stripe"] | None = None
    allow_sandbox: bool = False
    stripe_secret_key: str = ""
    stripe_webhook_secret: str = ""
    stripe_api_base: str = ""
    stripe_timeout_seconds: float = Field(default=10.0, gt=0)
    shop_name: str = Field(default="orderhub", min_length=1, max_length=100)

    email_backend: Literal["file", "smtp", "sendgrid", "none"] = "file"
    email_from: str = "orders@localhost"
    email_templates_dir: Path | None = None
    smtp_url: str = ""
    sendgrid_api_key: str = ""
    sendgrid_api_base: str = ""

    sheets_backend: Literal["csv", "google", "none"] = "csv"
    google_sheets_spreadsheet_id: str = ""
    google_application_credentials: str = ""
    google_sheets_api_base: str = ""

    notify_backend: Literal["file", "sns", "webhook", "none"] = "file"
    sns_topic_arn: str = ""
    notify_webhook_url: str = ""
    notify_webhook_secret: str = ""

    delivery_max_age_hours: int = Field(default=24, ge=1)
    worker_lease_seconds: int = Field(default=60, ge=1)
    worker_poll_seconds: float = Field(default=1.0, gt=0)
    # how long an order change waits while the in-process worker is behind and more CPU
    # would help it (delivery.pace); 0: never
    outbox_backpressure_seconds: float = Field(default=1.0, ge=0)
    probe_interval_seconds: int = Field(default=60, ge=1)
    reconcile_interval_seconds: int = Field(default=300, ge=0)  # 0: never
    alert_email: str = ""
    alert_webhook_url: str = ""
    alert_webhook_secret: str = ""  # default: NOTIFY_WEBHOOK_SECRET
    reporting_currency: str = "usd"
    metrics_public: bool = False
    # the directory every process of one `serve --workers N` counts its metrics into
    # (prometheus-client's multiprocess mode); `serve --workers N` makes a fresh one
    prometheus_multiproc_dir: Path | None = None
    console_enabled: bool = True
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "console"] = "json"

    @field_validator("api_keys", "cors_origins", "trusted_proxies", mode="before")
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator(
        "log_level", "log_format", "rate_limit_by", "reporting_currency", mode="before"
    )
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("payment_provider", mode="before")
    @classmethod
    def _empty_is_none_lower(cls, value: object) -> object:
        """An enumerated value: empty is unset, the rest is compared in lower case."""
        if isinstance(value, str) and not value.strip():
            return None
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("email_templates_dir", "prometheus_multiproc_dir", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        """A path: empty is unset; otherwise kept exactly as given (case included)."""
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if not self.database_url:
            object.__setattr__(self, "database_url", f"sqlite:///{self.data_dir / 'orderhub.db'}")
        if self.payment_provider is None:
            provider = "stripe" if self.stripe_secret_key else "sandbox"
            object.__setattr__(self, "payment_provider", provider)
        jwt_sources = [
            s for s in ("jwt_secret", "jwt_public_key", "jwt_jwks_url") if getattr(self, s)
        ]
        if len(jwt_sources) > 1:
            raise ValueError(
                f"{jwt_sources[1]}: only one of JWT_SECRET, JWT_PUBLIC_KEY, JWT_JWKS_URL"
            )
        if self.jwt_secret and len(self.jwt_secret.encode()) < MIN_JWT_SECRET_BYTES:
            raise ValueError(f"jwt_secret: must be at least {MIN_JWT_SECRET_BYTES} bytes for HS256")
        for claim in ("jwt_audience", "jwt_issuer"):
            if getattr(self, claim) and not jwt_sources:
                raise ValueError(
                    f"{claim}: set, but no JWT key is (JWT_SECRET, JWT_PUBLIC_KEY or JWT_JWKS_URL)"
                )
        if not _is_address(self.email_from):
            raise ValueError("email_from: not an email address (name@domain or Name <name@domain>)")
        if self.payment_provider == "stripe" and not self.stripe_secret_key:
            raise ValueError("stripe_secret_key: required when PAYMENT_PROVIDER=stripe")
        if (
            self.payment_provider == "sandbox"
            and not _is_loopback(self.host)
            and not self.allow_sandbox
        ):
            raise ValueError(
                "host: the sandbox payment provider only serves loopback; set ALLOW_SANDBOX=true"
            )
        if not self.database_url.startswith(("sqlite:///", "postgresql://", "dynamodb://")):
            raise ValueError(
                "database_url: must start with sqlite:///, postgresql:// or dynamodb://"
            )
        required = [
            ("smtp_url", self.email_backend == "smtp", "EMAIL_BACKEND=smtp"),
            ("sendgrid_api_key", self.email_backend == "sendgrid", "EMAIL_BACKEND=sendgrid"),
            (
                "google_sheets_spreadsheet_id",
                self.sheets_backend == "google",
                "SHEETS_BACKEND=google",
            ),
            (
                "google_application_credentials",
                self.sheets_backend == "google",
                "SHEETS_BACKEND=google",
            ),
            ("sns_topic_arn", self.notify_backend == "sns", "NOTIFY_BACKEND=sns"),
            ("notify_webhook_url", self.notify_backend == "webhook", "NOTIFY_BACKEND=webhook"),
            ("notify_webhook_secret", self.notify_backend == "webhook", "NOTIFY_BACKEND=webhook"),
        ]
        for name, needed, because in required:
            if needed and not getattr(self, name):
                raise ValueError(f"{name}: required when {because}")
        if self.alert_email and not _is_address(self.alert_email):
            raise ValueError("alert_email: not an email address")
        if self.alert_email and self.email_backend == "none":
            raise ValueError("alert_email: set, but EMAIL_BACKEND=none sends no email")
        if self.alert_webhook_url:
            if not self.alert_webhook_url.startswith(("https://", "http://")):
                raise ValueError("alert_webhook_url: must be an http(s) URL")
            if not self.alert_webhook_secret:
                object.__setattr__(self, "alert_webhook_secret", self.notify_webhook_secret)
            if not self.alert_webhook_secret:
                raise ValueError(
                    "alert_webhook_secret: required when ALERT_WEBHOOK_URL is set "
                    "(or set NOTIFY_WEBHOOK_SECRET)"
                )
        if self.redis_url and not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("redis_url: must start with redis://, rediss:// or unix://")
        if self.jwt_jwks_url and not self.jwt_jwks_url.startswith(("https://", "http://")):
            raise ValueError("jwt_jwks_url: must be an http(s) URL")
        if self.jwt_public_key:
            _check_public_key(self.jwt_public_key)
        if self.prometheus_multiproc_dir is not None and not self.prometheus_multiproc_dir.is_dir():
            raise ValueError("prometheus_multiproc_dir: not an existing directory")
        from orderhub.kit.currencies import UnknownCurrency, currency_exponent

        try:
            currency_exponent(self.reporting_currency)
        except UnknownCurrency:
            raise ValueError("reporting_currency: not an ISO 4217 currency code") from None
        return self

    @property
    def jwt_public_key_pem(self) -> bytes:
        """The PEM as given; `\\n` escapes (one-line env values) become newlines."""
        return self.jwt_public_key.replace("\\n", "\n").encode()

    @property
    def sqlite_path(self) -> Path | None:
        if self.database_url.startswith("sqlite:///"):
            return Path(self.database_url.removeprefix("sqlite:///"))
        return None

    @property
    def provider_name(self) -> Literal["sandbox", "stripe"]:
        assert self.payment_provider is not None  # set by the validator
        return self.payment_provider


def load_settings(**overrides: object) -> Settings:
    """Read the environment once; turn the first problem into a one-line `SettingsError`."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = error.get("loc") or ()
        message = str(error.get("msg", "invalid"))
        name = str(loc[0]) if loc else ""
        if not name and ":" in message:
            # model-level errors carry the field in the message: "Value error, field: problem"
            body = message.removeprefix("Value error, ")
            name, _, message = body.partition(":")
            message = message.strip()
        raise SettingsError(f"{name.upper()}: {message}") from None


# -- the environment of the processes `serve --workers N` starts ---------------------
# settings.py is the one module that touches the process environment: it reads it once,
# and, for prometheus-client's sake, hands one variable on to the worker processes.

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"


def prepare_worker_processes_environment(settings: Settings) -> None:
    """Set up this process's environment for the uvicorn worker processes it is about to
    start: call it before they spawn, as they inherit it then.

    Every worker process counts its Prometheus figures into one directory, so that a
    scrape answered by any of them sums them all (prometheus-client's multiprocess mode).
    prometheus-client takes that directory from the process environment only: it picks
    multiprocess mode when it is imported in a worker, before any orderhub code runs
    there, and names each metric's file from the variable. So it cannot be an argument or
    a setting handed over later; it must be in the environment the workers inherit from
    this process. Unless the operator named one (PROMETHEUS_MULTIPROC_DIR, then already
    in that environment), a fresh directory for this run, removed at exit. The workers'
    settings read the same variable, so their `Metrics` know the directory too."""
    if settings.prometheus_multiproc_dir is not None:
        return
    directory = tempfile.mkdtemp(prefix="orderhub-metrics-")
    os.environ[MULTIPROC_DIR] = directory
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
