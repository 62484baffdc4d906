"""Settings from the environment and `.env` (SPEC §2): defaults, parsing, one-line errors."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from orderhub.settings import Settings, SettingsError, load_settings


@pytest.fixture(autouse=True)
def _no_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """load_settings reads `.env` from the working directory: use an empty one."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def settings_error(monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert "\n" not in message
    assert "\r" not in message
    return message


def test_defaults() -> None:
    s = load_settings()
    assert s.host == "127.0.0.1"
    assert s.port == 3000
    assert s.data_dir == Path("./data")
    assert s.sqlite_path == Path("./data/orderhub.db")
    assert s.database_url.startswith("sqlite:///")
    assert s.api_keys == []
    assert (s.jwt_secret, s.jwt_public_key, s.jwt_jwks_url) == ("", "", "")
    assert (s.jwt_audience, s.jwt_issuer) == ("", "")
    assert s.rate_limit_max == 100
    assert s.rate_limit_window_seconds == 900
    assert s.rate_limit_by == "ip"
    assert s.redis_url == ""
    assert s.trusted_proxies == []
    assert s.cors_origins == []
    assert s.max_body_bytes == 1_048_576
    assert s.idempotency_ttl_hours == 24
    assert s.payment_provider == "sandbox"
    assert s.provider_name == "sandbox"
    assert s.allow_sandbox is False
    assert (s.stripe_secret_key, s.stripe_webhook_secret) == ("", "")
    assert s.email_backend == "file"
    assert s.email_from == "orders@localhost"
    assert s.email_templates_dir is None
    assert s.sheets_backend == "csv"
    assert s.notify_backend == "file"
    assert s.delivery_max_age_hours == 24
    assert s.worker_lease_seconds == 60
    assert s.worker_poll_seconds == 1
    assert s.probe_interval_seconds == 60
    assert s.reporting_currency == "usd"
    assert s.metrics_public is False
    assert s.log_level == "info"
    assert s.log_format == "json"


def test_settings_without_env_file_have_the_same_defaults() -> None:
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert (s.host, s.port, s.provider_name) == ("127.0.0.1", 3000, "sandbox")


def test_database_url_follows_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "d"))
    s = load_settings()
    assert s.database_url == f"sqlite:///{tmp_path / 'd' / 'orderhub.db'}"
    assert s.sqlite_path == tmp_path / "d" / "orderhub.db"


def test_explicit_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://orderhub@db:5432/orderhub")
    s = load_settings()
    assert s.database_url == "postgresql://orderhub@db:5432/orderhub"
    assert s.sqlite_path is None


def test_api_keys_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_KEYS", " key-one, key-two ,,key-three,")
    assert load_settings().api_keys == ["key-one", "key-two", "key-three"]


def test_single_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_KEYS", "only-key")
    assert load_settings().api_keys == ["only-key"]


def test_cors_origins_and_trusted_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.1/32,::1/128")
    s = load_settings()
    assert s.cors_origins == ["https://a.example", "https://b.example"]
    assert s.trusted_proxies == [
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("192.168.1.1/32"),
        ipaddress.ip_network("::1/128"),
    ]


NUMBERS_BOOLEANS_AND_CASE = {
    "PORT": ("8080", "port", 8080),
    "RATE_LIMIT_MAX": ("5", "rate_limit_max", 5),
    "RATE_LIMIT_BY": ("Credential", "rate_limit_by", "credential"),
    "METRICS_PUBLIC": ("true", "metrics_public", True),
    "LOG_LEVEL": ("DEBUG", "log_level", "debug"),
    "LOG_FORMAT": ("console", "log_format", "console"),
    "REPORTING_CURRENCY": ("EUR", "reporting_currency", "eur"),
}
"""Environment variable: (its text, the setting it sets, the parsed value)."""


def test_numbers_booleans_and_case(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, (text, _, _) in NUMBERS_BOOLEANS_AND_CASE.items():
        monkeypatch.setenv(name, text)
    s = load_settings()
    parsed = {
        name: getattr(s, attribute) for name, (_, attribute, _) in NUMBERS_BOOLEANS_AND_CASE.items()
    }
    expected = {name: value for name, (_, _, value) in NUMBERS_BOOLEANS_AND_CASE.items()}
    assert parsed == expected
    assert s.metrics_public is True


def test_dotenv_is_read_and_the_environment_wins(
    monkeypatch: pytest.MonkeyPatch, _no_dotenv: Path
) -> None:
    (_no_dotenv / ".env").write_text("PORT=4000\nAPI_KEYS=a,b\nRATE_LIMIT_MAX=7\n")
    s = load_settings()
    assert (s.port, s.api_keys, s.rate_limit_max) == (4000, ["a", "b"], 7)
    monkeypatch.setenv("PORT", "5000")
    assert load_settings().port == 5000


def test_overrides_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "5000")
    assert load_settings(port=6000).port == 6000


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PORT": "abc"}, "PORT: Input should be a valid integer"),
        ({"PORT": "0"}, "PORT: "),
        ({"PORT": "70000"}, "PORT: "),
        ({"RATE_LIMIT_BY": "foo"}, "RATE_LIMIT_BY: "),
        ({"RATE_LIMIT_MAX": "0"}, "RATE_LIMIT_MAX: "),
        ({"RATE_LIMIT_WINDOW_SECONDS": "soon"}, "RATE_LIMIT_WINDOW_SECONDS: "),
        ({"MAX_BODY_BYTES": "-1"}, "MAX_BODY_BYTES: "),
        ({"ALLOW_SANDBOX": "maybe"}, "ALLOW_SANDBOX: "),
        ({"METRICS_PUBLIC": "sometimes"}, "METRICS_PUBLIC: "),
        ({"TRUSTED_PROXIES": "not-a-cidr"}, "TRUSTED_PROXIES: "),
        ({"PAYMENT_PROVIDER": "paypal"}, "PAYMENT_PROVIDER: "),
        ({"EMAIL_BACKEND": "pigeon"}, "EMAIL_BACKEND: "),
        ({"SHEETS_BACKEND": "excel"}, "SHEETS_BACKEND: "),
        ({"NOTIFY_BACKEND": "fax"}, "NOTIFY_BACKEND: "),
        ({"LOG_LEVEL": "verbose"}, "LOG_LEVEL: "),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT: "),
        ({"WORKER_POLL_SECONDS": "0"}, "WORKER_POLL_SECONDS: "),
        ({"DATABASE_URL": "mysql://db/orderhub"}, "DATABASE_URL: "),
        ({"REPORTING_CURRENCY": "xyz"}, "REPORTING_CURRENCY: "),
        ({"PROMETHEUS_MULTIPROC_DIR": "/no/such/folder"}, "PROMETHEUS_MULTIPROC_DIR: not an"),
    ],
    ids=lambda value: next(iter(value)) if isinstance(value, dict) else "",
)
def test_bad_value_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    text = settings_error(monkeypatch, **env)
    assert text.startswith(message)
    assert len(text) > len(message)


def test_bad_value_message_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings_error(monkeypatch, RATE_LIMIT_BY="foo") == (
        "RATE_LIMIT_BY: Input should be 'ip' or 'credential'"
    )
    monkeypatch.delenv("RATE_LIMIT_BY")
    assert settings_error(monkeypatch, REPORTING_CURRENCY="xyz") == (
        "REPORTING_CURRENCY: not an ISO 4217 currency code"
    )


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("JWT_SECRET", "JWT_PUBLIC_KEY"),
        ("JWT_SECRET", "JWT_JWKS_URL"),
        ("JWT_PUBLIC_KEY", "JWT_JWKS_URL"),
    ],
)
def test_two_jwt_settings_are_rejected(
    monkeypatch: pytest.MonkeyPatch, first: str, second: str
) -> None:
    text = settings_error(monkeypatch, **{first: "value-1", second: "value-2"})
    assert text == f"{second}: only one of JWT_SECRET, JWT_PUBLIC_KEY, JWT_JWKS_URL"


def test_all_three_jwt_settings_are_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    text = settings_error(
        monkeypatch, JWT_SECRET="s", JWT_PUBLIC_KEY="k", JWT_JWKS_URL="https://x/jwks"
    )
    assert text.startswith("JWT_")
    assert "only one of JWT_SECRET, JWT_PUBLIC_KEY, JWT_JWKS_URL" in text


def _rsa_public_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("JWT_SECRET", "a-secret-of-at-least-32-bytes-ok"),
        ("JWT_PUBLIC_KEY", _rsa_public_pem()),
        ("JWT_JWKS_URL", "https://idp.example/.well-known/jwks.json"),
    ],
)
def test_one_jwt_setting_is_fine(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    assert getattr(load_settings(), name.lower()) == value


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        (
            "JWT_PUBLIC_KEY",
            "-----BEGIN PUBLIC KEY-----\nabc\n-----END PUBLIC KEY-----\n",
            "JWT_PUBLIC_KEY: not a PEM public key",
        ),
        ("JWT_JWKS_URL", "notaurl", "JWT_JWKS_URL: must be an http(s) URL"),
        ("REDIS_URL", "http://x", "REDIS_URL: must start with redis://, rediss:// or unix://"),
    ],
)
def test_unusable_urls_and_keys_stop_start_up(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    assert settings_error(monkeypatch, **{name: value}) == expected


def test_ec_keys_other_than_p256_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = (
        ec.generate_private_key(ec.SECP384R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    assert settings_error(monkeypatch, JWT_PUBLIC_KEY=pem) == (
        "JWT_PUBLIC_KEY: must be an RSA (RS256) or EC P-256 (ES256) public key"
    )


def test_stripe_without_secret_key_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    text = settings_error(monkeypatch, PAYMENT_PROVIDER="stripe")
    assert text == "STRIPE_SECRET_KEY: required when PAYMENT_PROVIDER=stripe"


def test_stripe_secret_key_selects_stripe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_123")
    s = load_settings()
    assert s.payment_provider == "stripe"
    assert s.provider_name == "stripe"


def test_explicit_sandbox_beats_stripe_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_123")
    monkeypatch.setenv("PAYMENT_PROVIDER", "Sandbox")
    assert load_settings().provider_name == "sandbox"


def test_empty_payment_provider_means_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYMENT_PROVIDER", "")
    assert load_settings().provider_name == "sandbox"


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "orderhub.example.com"])
def test_sandbox_on_public_host_is_rejected(monkeypatch: pytest.MonkeyPatch, host: str) -> None:
    text = settings_error(monkeypatch, HOST=host)
    assert text == "HOST: the sandbox payment provider only serves loopback; set ALLOW_SANDBOX=true"


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3"])
def test_sandbox_on_public_host_with_allow_sandbox(
    monkeypatch: pytest.MonkeyPatch, host: str
) -> None:
    monkeypatch.setenv("HOST", host)
    monkeypatch.setenv("ALLOW_SANDBOX", "true")
    s = load_settings()
    assert (s.host, s.allow_sandbox, s.provider_name) == (host, True, "sandbox")


def test_stripe_on_public_host_is_fine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOST", "0.0.0.0")
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_123")
    s = load_settings()
    assert (s.host, s.provider_name) == ("0.0.0.0", "stripe")


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_sandbox_on_loopback_is_fine(monkeypatch: pytest.MonkeyPatch, host: str) -> None:
    """Every loopback address (127.0.0.0/8, ::1) counts as loopback (SPEC §2)."""
    monkeypatch.setenv("HOST", host)
    assert load_settings().host == host


def test_first_problem_only(monkeypatch: pytest.MonkeyPatch) -> None:
    text = settings_error(monkeypatch, PORT="abc", RATE_LIMIT_BY="foo")
    assert text.startswith("PORT: ")
    assert "RATE_LIMIT_BY" not in text


def test_secret_values_are_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    text = settings_error(monkeypatch, JWT_SECRET="super-secret-value", JWT_JWKS_URL="https://j")
    assert "super-secret-value" not in text


def test_paths_keep_their_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMAIL_TEMPLATES_DIR", "/srv/Shop/Email-Templates")
    monkeypatch.setenv("PAYMENT_PROVIDER", " SandBox ")  # enumerated: normalised
    s = load_settings()
    assert s.email_templates_dir == Path("/srv/Shop/Email-Templates")
    assert s.payment_provider == "sandbox"
    monkeypatch.setenv("EMAIL_TEMPLATES_DIR", "  ")
    assert load_settings().email_templates_dir is None


def test_jwt_secret_must_be_32_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings_error(monkeypatch, JWT_SECRET="x" * 31) == (
        "JWT_SECRET: must be at least 32 bytes for HS256"
    )
    monkeypatch.setenv("JWT_SECRET", "x" * 32)
    assert load_settings().jwt_secret == "x" * 32


@pytest.mark.parametrize("name", ["JWT_AUDIENCE", "JWT_ISSUER"])
def test_jwt_claim_checks_need_a_jwt_key(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    assert settings_error(monkeypatch, **{name: "orderhub"}) == (
        f"{name}: set, but no JWT key is (JWT_SECRET, JWT_PUBLIC_KEY or JWT_JWKS_URL)"
    )
    monkeypatch.setenv("JWT_JWKS_URL", "https://idp.example/jwks.json")
    assert getattr(load_settings(), name.lower()) == "orderhub"


@pytest.mark.parametrize(
    "value", ["orders", "orders@", "@shop.example", "a b@shop.example", "x@y\nBcc: z@w", ""]
)
def test_email_from_must_be_an_address(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    text = settings_error(monkeypatch, EMAIL_FROM=value)
    assert text.startswith("EMAIL_FROM: not an email address")


@pytest.mark.parametrize("value", ["orders@shop.example", "Shop <orders@shop.example>"])
def test_email_from_addresses(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("EMAIL_FROM", value)
    assert load_settings().email_from == value


def test_jwt_leeway_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().jwt_leeway_seconds == 30
    monkeypatch.setenv("JWT_LEEWAY_SECONDS", "5")
    assert load_settings().jwt_leeway_seconds == 5
    assert settings_error(monkeypatch, JWT_LEEWAY_SECONDS="-1").startswith("JWT_LEEWAY_SECONDS:")
