"""Typed settings from a TOML file, `UTOPIA_*` environment variables and command-line flags.

Precedence: flags > environment > file > defaults. A settings class is a `msgspec.Struct` whose
fields are scalars or sections (nested structs, one level deep): the setting `nats.url` is
`[nats] url = ...` in the file and `UTOPIA_NATS_URL` in the environment. Values are loaded once at
start-up and passed in; nothing here is cached at import time. A bad value raises `SettingsError`
naming the setting, where it came from, and what was expected.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import msgspec

T = TypeVar("T", bound=msgspec.Struct)

ENV_PREFIX = "UTOPIA_"
CONFIG_FILE_ENV = "UTOPIA_CONFIG"

Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]
PositiveInt = Annotated[int, msgspec.Meta(gt=0)]
PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]
NatsUrl = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^(nats|tls|ws|wss)://[^/\s,]+(,\s*(nats|tls|ws|wss)://[^/\s,]+)*$",
        description="nats://host:port, comma-separated for a cluster",
    ),
]


class SettingsError(ValueError):
    """A setting is missing, mistyped or out of range; the message names it."""


class NatsSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """How to reach NATS. Secrets come from the environment or a file outside the repo."""

    # One URL, or several separated by commas for a cluster.
    url: NatsUrl = "nats://127.0.0.1:4222"
    user: str | None = None
    password: str | None = None
    token: str | None = None
    nkey_seed_file: str | None = None
    creds_file: str | None = None
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    connect_timeout_s: PositiveFloat = 5.0

    def __post_init__(self) -> None:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file must be given together")


def _field_names(cls: type[msgspec.Struct]) -> dict[str, type[msgspec.Struct] | None]:
    """Field name -> section class (or None for a scalar field)."""
    info = msgspec.inspect.type_info(cls)
    assert isinstance(info, msgspec.inspect.StructType)
    fields: dict[str, type[msgspec.Struct] | None] = {}
    for field in info.fields:
        ftype = field.type
        fields[field.name] = ftype.cls if isinstance(ftype, msgspec.inspect.StructType) else None
    return fields


def _is_sequence_field(cls: type[msgspec.Struct], name: str) -> bool:
    info = msgspec.inspect.type_info(cls)
    assert isinstance(info, msgspec.inspect.StructType)
    for field in info.fields:
        if field.name == name:
            ftype = field.type
            if isinstance(ftype, msgspec.inspect.UnionType):
                return any(
                    isinstance(t, (msgspec.inspect.ListType, msgspec.inspect.TupleType, msgspec.inspect.VarTupleType))
                    for t in ftype.types
                )
            return isinstance(
                ftype, (msgspec.inspect.ListType, msgspec.inspect.TupleType, msgspec.inspect.VarTupleType)
            )
    return False


def env_name(path: str) -> str:
    """`nats.url` -> `UTOPIA_NATS_URL`."""
    return ENV_PREFIX + path.replace(".", "_").upper()


def _from_env(cls: type[msgspec.Struct], env: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, section in _field_names(cls).items():
        if section is None:
            raw = env.get(env_name(name))
            if raw is not None:
                values[name] = _env_value(cls, name, raw)
            continue
        sub: dict[str, Any] = {}
        for sub_name in _field_names(section):
            raw = env.get(env_name(f"{name}.{sub_name}"))
            if raw is not None:
                sub[sub_name] = _env_value(section, sub_name, raw)
        if sub:
            values[name] = sub
    return values


def _env_value(cls: type[msgspec.Struct], name: str, raw: str) -> Any:
    if _is_sequence_field(cls, name):
        return [item.strip() for item in raw.split(",") if item.strip()]
    return raw


def _merge(base: dict[str, Any], top: Mapping[str, Any], origin: dict[str, str], source: str) -> None:
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            for sub_key, sub_value in value.items():
                base[key][sub_key] = sub_value
                origin[f"{key}.{sub_key}"] = source
        elif isinstance(value, Mapping):
            base[key] = dict(value)
            for sub_key in value:
                origin[f"{key}.{sub_key}"] = source
        else:
            base[key] = value
            origin[key] = source


def _overrides_tree(overrides: Mapping[str, object]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for dotted, value in overrides.items():
        if value is None:
            continue
        head, _, tail = dotted.partition(".")
        if tail:
            tree.setdefault(head, {})[tail] = value
        else:
            tree[head] = value
    return tree


_PATH_RE = re.compile(r" - at `\$\.([A-Za-z0-9_.]+)`")


def _explain(error: msgspec.ValidationError, origin: Mapping[str, str]) -> str:
    message = str(error)
    match = _PATH_RE.search(message)
    if match is None:
        unknown = re.match(r"Object contains unknown field `([^`]+)`", message)
        if unknown:
            name = unknown.group(1)
            return f"unknown setting {name} (from {origin.get(name, 'input')}): check its spelling"
        return f"invalid settings: {message}"
    path = match.group(1)
    what = message[: match.start()]
    unknown = re.match(r"Object contains unknown field `([^`]+)`", what)
    if unknown:
        name = f"{path}.{unknown.group(1)}"
        return f"unknown setting {name} (from {origin.get(name, 'input')}): check its spelling"
    source = origin.get(path, "default")
    return f"invalid setting {path} (env {env_name(path)}, from {source}): {what}"


def load_settings(
    cls: type[T],
    *,
    config_file: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, object] | None = None,
) -> T:
    """Build `cls` from defaults, the TOML file, the environment and flags (dotted names)."""
    environ = os.environ if env is None else env
    origin: dict[str, str] = {}
    merged: dict[str, Any] = {}
    path = config_file if config_file is not None else environ.get(CONFIG_FILE_ENV)
    if path:
        try:
            with open(path, "rb") as fh:
                from_file = tomllib.load(fh)
        except OSError as exc:
            raise SettingsError(f"config file {path}: {exc.strerror or exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"config file {path}: not valid TOML: {exc}") from exc
        _merge(merged, from_file, origin, f"file {path}")
    _merge(merged, _from_env(cls, environ), origin, "environment")
    _merge(merged, _overrides_tree(overrides or {}), origin, "command line")
    try:
        return msgspec.convert(merged, cls, strict=False)
    except msgspec.ValidationError as exc:
        raise SettingsError(_explain(exc, origin)) from None


LogLevel = Literal["debug", "info", "warning", "error"]


# --- the edge agent's own settings -------------------------------------------------------------

Fsync = Literal["normal", "full", "off"]
WireFormat = Literal["msgpack", "json"]
NonNegativeFloat = Annotated[float, msgspec.Meta(ge=0)]


class AgentSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The `[edge]` section: outbox, batching and sending (env `UTOPIA_EDGE_*`)."""

    # SQLite file holding unsent events; it survives restarts and must stay on local disk.
    outbox_path: str = "utopia-edge-outbox.sqlite3"
    # SQLite `synchronous` in WAL mode. normal (default): a commit survives a crash or kill -9 of the
    # agent, but a power loss or kernel crash may lose the last commits not yet checkpointed (about
    # a second of events). full: fsync on every commit, survives power loss, costs throughput.
    # off: no fsync at all, an OS crash may corrupt the outbox.
    fsync: Fsync = "normal"
    # Payload encoding on the wire: MessagePack array of maps, or a JSON array.
    format: WireFormat = "msgpack"
    # A batch (one NATS message) is sealed at this many events, this many bytes or this age,
    # whichever comes first. Keep batch_max_bytes under the server's max_payload (default 1 MiB).
    batch_size: PositiveInt = 500
    batch_max_bytes: Annotated[int, msgspec.Meta(ge=1024, le=64 * 1024 * 1024)] = 512 * 1024
    linger_ms: NonNegativeFloat = 50.0
    # Bound of the outbox; when full the source is held back (never dropped) and an alarm raised.
    max_backlog_events: PositiveInt = 2_000_000
    max_backlog_bytes: PositiveInt = 512 * 1024 * 1024
    # Batches published and awaiting their JetStream ack at once.
    max_in_flight: PositiveInt = 64
    # A batch not acknowledged within this time is re-sent (with the same id and bytes).
    ack_timeout_s: PositiveFloat = 5.0
    # Retry delays for connecting and after failed sends: doubling from min to max.
    backoff_min_s: PositiveFloat = 0.25
    backoff_max_s: PositiveFloat = 15.0
    # On SIGTERM/SIGINT, time allowed to send what is left before exiting (it stays in the outbox).
    shutdown_grace_s: NonNegativeFloat = 5.0
    # Prometheus text metrics on http://metrics_host:metrics_port/metrics; None disables them.
    metrics_host: str = "127.0.0.1"
    metrics_port: Port | None = None
    # A one-line stats log every this many seconds (0 disables it).
    stats_interval_s: NonNegativeFloat = 10.0

    def __post_init__(self) -> None:
        if self.backoff_min_s > self.backoff_max_s:
            raise ValueError("backoff_min_s must not exceed backoff_max_s")


# Top-level unknown sections are tolerated on purpose: one TOML file can then configure both the
# core (`[database]`, `[ingest]`...) and the edge agent. Inside a section, a typo still fails.
class EdgeSettings(msgspec.Struct, kw_only=True):
    """Everything the edge agent reads: `[nats]`, `[edge]` and `log_level`."""

    nats: NatsSettings = msgspec.field(default_factory=NatsSettings)
    edge: AgentSettings = msgspec.field(default_factory=AgentSettings)
    log_level: LogLevel = "info"


def load_edge_settings(
    config_file: str | Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, object] | None = None,
) -> EdgeSettings:
    """Edge settings from file < `UTOPIA_*` env < flags; raises `SettingsError` naming the setting."""
    return load_settings(EdgeSettings, config_file=config_file, env=env, overrides=overrides)
