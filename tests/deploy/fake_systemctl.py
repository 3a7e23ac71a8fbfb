#!/usr/bin/python3
"""A stand-in for `systemctl` inside the throwaway Debian root of `make test-deploy`.

No systemd runs in a chroot, so the roles' `systemd_service` tasks and handlers could not start
anything there. Installed as /usr/local/sbin/systemctl (found before /usr/bin/systemctl), this
script starts, stops and reports the units the roles wrote, reading the same unit files: the
ExecStart* lines run as the unit's User/Group with its Environment and EnvironmentFile, in its
WorkingDirectory, detached, with output in /var/log/fake-systemd/<unit>.log. Sandboxing options
are not applied (`systemd-analyze verify` checks them). Anything else (enable, is-enabled,
list-unit-files) goes to the real systemctl, which works offline on the unit files.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

UNIT_DIRS = ("/etc/systemd/system", "/run/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system")
STATE = Path("/run/fake-systemd")
LOGS = Path("/var/log/fake-systemd")
REAL = "/usr/bin/systemctl"


class Unit:
    def __init__(self, name: str) -> None:
        self.name = name if "." in name else name + ".service"
        rest = self.name.partition("@")[2]
        self.instance = rest.rsplit(".", 1)[0] if rest else ""
        self.path = self._find()
        self.service: dict[str, list[str]] = {}
        if self.path is not None:
            self._parse(self.path)

    def _find(self) -> Path | None:
        candidates = [self.name]
        if self.instance:
            candidates.append(self.name.replace("@" + self.instance, "@", 1))
        for directory in UNIT_DIRS:
            for candidate in candidates:
                path = Path(directory) / candidate
                if path.exists() and not (path.is_symlink() and os.readlink(path) == "/dev/null"):
                    return path
        return None

    def _parse(self, path: Path) -> None:
        section = ""
        text = re.sub(r"\\\n", " ", path.read_text())
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = line.strip("[]")
                continue
            if section != "Service" or "=" not in line:
                continue
            key, value = (part.strip() for part in line.split("=", 1))
            if value == "":
                self.service.pop(key, None)
            else:
                self.service.setdefault(key, []).append(self._specifiers(value))

    def _specifiers(self, value: str) -> str:
        table = {"i": self.instance, "I": self.instance, "n": self.name, "N": self.name.rsplit(".", 1)[0]}
        table["p"] = self.name.split("@")[0].rsplit(".", 1)[0]
        return re.sub(r"%([%inNpI])", lambda m: "%" if m.group(1) == "%" else table[m.group(1)], value)

    def get(self, key: str, default: str = "") -> str:
        return self.service.get(key, [default])[-1]

    @property
    def pidfile(self) -> Path:
        return STATE / (self.name + ".pid")

    def main_pid(self) -> int | None:
        for path in (Path(self.get("PIDFile")) if self.get("PIDFile") else None, self.pidfile):
            if path is None:
                continue
            try:
                pid = int(path.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue
            if _alive(pid):
                return pid
        return None

    def environment(self) -> dict[str, str]:
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
        for line in self.service.get("Environment", []):
            for item in shlex.split(line):
                key, _, value = item.partition("=")
                env[key] = value
        for line in self.service.get("EnvironmentFile", []):
            optional = line.startswith("-")
            try:
                text = Path(line.lstrip("-")).read_text()
            except OSError:
                if optional:
                    continue
                raise
            for raw in text.splitlines():
                entry = raw.strip()
                if entry and not entry.startswith("#") and "=" in entry:
                    key, _, value = entry.partition("=")
                    env[key.strip()] = " ".join(shlex.split(value)) if value.strip() else ""
        return env


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _command(unit: Unit, line: str, env: dict[str, str]) -> tuple[list[str], bool, bool]:
    """argv, ignore-failure, privileged for one Exec line."""
    ignore = privileged = False
    while line and line[0] in "-@+!:":
        ignore |= line[0] == "-"
        privileged |= line[0] in "+!"
        line = line[1:]
    line = re.sub(r"\$\{(\w+)\}", lambda m: env.get(m.group(1), ""), line)
    return shlex.split(line), ignore, privileged


def _credentials(unit: Unit, privileged: bool) -> tuple[int, int, str] | None:
    user = unit.get("User")
    if privileged or not user or user == "root":
        return None
    entry = pwd.getpwnam(user)
    gid = grp.getgrnam(unit.get("Group")).gr_gid if unit.get("Group") else entry.pw_gid
    return entry.pw_uid, gid, user


def _prepare_dirs(unit: Unit) -> None:
    creds = _credentials(unit, False)
    for key, base in (("RuntimeDirectory", "/run"), ("StateDirectory", "/var/lib"), ("LogsDirectory", "/var/log")):
        for name in " ".join(unit.service.get(key, [])).split():
            path = Path(base) / name
            path.mkdir(parents=True, exist_ok=True)
            if creds:
                os.chown(path, creds[0], creds[1])


def _spawn(unit: Unit, line: str, env: dict[str, str], *, wait: bool) -> int:
    argv, ignore, privileged = _command(unit, line, env)
    creds = _credentials(unit, privileged)
    identity: dict[str, object] = {}
    if creds is not None:
        identity = {"user": creds[0], "group": creds[1], "extra_groups": os.getgrouplist(creds[2], creds[1])}
    LOGS.mkdir(parents=True, exist_ok=True)
    with open(LOGS / (unit.name + ".log"), "ab") as log:
        process = subprocess.Popen(
            argv,
            env=env,
            cwd=unit.get("WorkingDirectory", "/").lstrip("-") or "/",
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **identity,  # type: ignore[arg-type]
        )
    if not wait:
        return process.pid
    rc = process.wait()
    if rc != 0 and not ignore:
        raise RuntimeError(f"{unit.name}: {argv[0]} exited with {rc}")
    return rc


def start(unit: Unit) -> None:
    if unit.path is None:
        raise RuntimeError(f"Unit {unit.name} not found.")
    if unit.main_pid() is not None:
        return
    env = unit.environment()
    _prepare_dirs(unit)
    STATE.mkdir(parents=True, exist_ok=True)
    for line in unit.service.get("ExecStartPre", []):
        _spawn(unit, line, env, wait=True)
    kind = unit.get("Type", "simple")
    for line in unit.service.get("ExecStart", []):
        if kind in ("forking", "oneshot"):
            _spawn(unit, line, env, wait=True)
        else:
            unit.pidfile.write_text(str(_spawn(unit, line, env, wait=False)))
    if kind == "forking":
        deadline = time.monotonic() + 30
        while unit.main_pid() is None and time.monotonic() < deadline:
            time.sleep(0.2)
    for line in unit.service.get("ExecStartPost", []):
        _spawn(unit, line, env, wait=True)


def stop(unit: Unit) -> None:
    pid = unit.main_pid()
    if pid is None:
        return
    env = unit.environment()
    env["MAINPID"] = str(pid)
    for line in unit.service.get("ExecStop", []):
        _spawn(unit, line, env, wait=True)
    number = getattr(signal, unit.get("KillSignal", "SIGTERM"), signal.SIGTERM)
    deadline = time.monotonic() + 30
    while _alive(pid) and time.monotonic() < deadline:
        try:
            os.killpg(pid, number)
        except ProcessLookupError:
            os.kill(pid, number)
        time.sleep(0.3)
    if _alive(pid):
        os.killpg(pid, signal.SIGKILL)
    unit.pidfile.unlink(missing_ok=True)


def show(unit: Unit) -> None:
    if unit.path is None:
        print(f"Id={unit.name}\nLoadState=not-found\nActiveState=inactive\nSubState=dead")
        return
    pid = unit.main_pid()
    print(f"Id={unit.name}\nLoadState=loaded\nFragmentPath={unit.path}")
    print(f"ActiveState={'active' if pid else 'inactive'}\nSubState={'running' if pid else 'dead'}\nMainPID={pid or 0}")


def _restart(unit: Unit, verb: str) -> None:
    if verb != "try-restart" or unit.main_pid() is not None:
        stop(unit)
        start(unit)


def _show_all(units: list[Unit]) -> int:
    for unit in units:
        show(unit)
    return 0


def _is_active(units: list[Unit]) -> int:
    active = [unit.main_pid() is not None for unit in units]
    print("\n".join("active" if a else "inactive" for a in active))
    return 0 if all(active) else 3


def _each(action: object) -> object:
    def run(units: list[Unit]) -> int:
        for unit in units:
            action(unit)  # type: ignore[operator]
        return 0

    return run


def _noop(units: list[Unit]) -> int:
    return 0


VERBS = {
    "daemon-reload": _noop,
    "daemon-reexec": _noop,
    "reset-failed": _noop,
    "show": _show_all,
    "is-active": _is_active,
    "start": _each(start),
    "stop": _each(stop),
    "restart": _each(lambda unit: _restart(unit, "restart")),
    "reload": _each(lambda unit: _restart(unit, "reload")),
    "reload-or-restart": _each(lambda unit: _restart(unit, "restart")),
    "try-restart": _each(lambda unit: _restart(unit, "try-restart")),
}


def main(argv: list[str]) -> int:
    args = [arg for arg in argv if not arg.startswith("-")]
    verb = VERBS.get(args[0]) if args else None
    if verb is None:
        return subprocess.call([REAL, *argv])
    try:
        return int(verb([Unit(name) for name in args[1:]]))  # type: ignore[operator]
    except (RuntimeError, OSError, KeyError) as exc:
        print(f"fake systemctl: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
