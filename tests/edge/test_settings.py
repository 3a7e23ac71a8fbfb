"""Edge settings (file < env < flags) and the NATS connect options built from them."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import pytest

from utopia_edge.connection import connect_options
from utopia_edge.settings import NatsSettings, SettingsError, load_edge_settings


def test_flags_win_over_env_over_file(tmp_path: Path) -> None:
    config = tmp_path / "utopia.toml"
    config.write_text(
        '[nats]\nurl = "nats://file:4222"\n[edge]\nbatch_size = 10\nfsync = "full"\n'
        '[database]\nurl = "postgresql://core-only"\n'  # a section of the core: tolerated
    )
    env = {"UTOPIA_NATS_URL": "nats://env:4222", "UTOPIA_EDGE_BATCH_SIZE": "20"}
    settings = load_edge_settings(config, env=env, overrides={"edge.batch_size": 30, "edge.format": None})
    assert settings.nats.url == "nats://env:4222"
    assert settings.edge.batch_size == 30
    assert settings.edge.fsync == "full"
    assert settings.edge.format == "msgpack"


def test_a_bad_value_names_the_setting() -> None:
    with pytest.raises(SettingsError, match=r"edge\.fsync.*UTOPIA_EDGE_FSYNC"):
        load_edge_settings(env={"UTOPIA_EDGE_FSYNC": "sometimes"})
    with pytest.raises(SettingsError, match=r"edge\.max_backlog_events"):
        load_edge_settings(env={"UTOPIA_EDGE_MAX_BACKLOG_EVENTS": "0"})


def test_a_typo_inside_the_edge_section_fails(tmp_path: Path) -> None:
    config = tmp_path / "utopia.toml"
    config.write_text("[edge]\nbatch_sise = 10\n")
    with pytest.raises(SettingsError, match=r"unknown setting edge\.batch_sise"):
        load_edge_settings(config, env={})


def test_user_password_and_token() -> None:
    options = connect_options(NatsSettings(url="nats://a:1, nats://b:2", user="cam", password="pw"), name="t")
    assert options["servers"] == ["nats://a:1", "nats://b:2"]
    assert (options["user"], options["password"]) == ("cam", "pw")
    assert "tls" not in options
    assert connect_options(NatsSettings(token="s3cret"), name="t")["token"] == "s3cret"
    with pytest.raises(SettingsError, match=r"nats\.password"):
        connect_options(NatsSettings(password="pw"), name="t")


def test_nkey_seed_and_creds_files_must_exist(tmp_path: Path) -> None:
    seed = tmp_path / "user.nk"
    seed.write_text("SUAM...")
    creds = tmp_path / "user.creds"
    creds.write_text("-----BEGIN NATS USER JWT-----")
    options = connect_options(NatsSettings(nkey_seed_file=str(seed), creds_file=str(creds)), name="t")
    assert options["nkeys_seed"] == str(seed)
    assert options["user_credentials"] == str(creds)
    with pytest.raises(SettingsError, match=r"nats\.creds_file.*no such file"):
        connect_options(NatsSettings(creds_file=str(tmp_path / "missing.creds")), name="t")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make certificates")
def test_tls_context_with_ca_and_client_certificate(tmp_path: Path) -> None:
    cert, key = tmp_path / "client.pem", tmp_path / "client.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=edge",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    settings = NatsSettings(
        url="tls://core:4222", tls_ca_file=str(cert), tls_cert_file=str(cert), tls_key_file=str(key)
    )
    context = connect_options(settings, name="t")["tls"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert len(context.get_ca_certs()) == 1
    # A tls:// URL alone still gets a (system CA) context; a broken CA file is a settings error.
    assert isinstance(connect_options(NatsSettings(url="tls://core:4222"), name="t")["tls"], ssl.SSLContext)
    with pytest.raises(SettingsError, match="TLS"):
        connect_options(NatsSettings(tls_ca_file=str(key)), name="t")
