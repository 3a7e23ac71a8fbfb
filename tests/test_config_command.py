"""`utopia config check`: the validator the deployment runs on rendered settings files."""

from __future__ import annotations

from pathlib import Path

import pytest

from utopia.cli import main


def test_a_good_file_passes_and_secrets_are_masked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "utopia.toml"
    path.write_text('[nats]\nurl = "nats://a:4222,nats://b:4222"\npassword = "s3cret"\n[streams]\nreplicas = 3\n')
    assert main(["config", "check", "--config", str(path), "--show"]) == 0
    out = capsys.readouterr().out
    assert "core settings OK" in out
    assert "s3cret" not in out
    assert "'replicas': 3" in out


def test_a_bad_setting_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "utopia.toml"
    path.write_text("[streams]\nreplicas = 0\n")
    assert main(["--config", str(path), "config", "check"]) == 2
    assert "streams.replicas" in capsys.readouterr().err


def test_edge_settings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "edge.toml"
    path.write_text('[edge]\noutbox_path = "/var/lib/utopia-edge/outbox.sqlite3"\nfsync = "full"\n')
    assert main(["config", "check", "--edge", "--config", str(path)]) == 0
    path.write_text('[edge]\nfsync = "sometimes"\n')
    assert main(["config", "check", "--edge", "--config", str(path)]) == 2
    assert "edge.fsync" in capsys.readouterr().err
