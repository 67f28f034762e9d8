"""The shipped systemd units: hardened (umask, memory and task caps, syscall filter, read-only
system), and valid for systemd itself when systemd-analyze is installed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

UNITS = sorted((Path(__file__).resolve().parent.parent / "systemd").glob("*.service"))


def directives(unit: Path) -> dict[str, list[str]]:
    """[Service] key -> every value it is given (systemd keys may repeat)."""
    out: dict[str, list[str]] = {}
    section = ""
    for raw in unit.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
        elif section == "[Service]":
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_units_are_hardened(unit: Path) -> None:
    d = directives(unit)
    assert d["UMask"] == ["0027"]
    assert d["MemoryMax"] and d["TasksMax"] and int(d["TasksMax"][0]) <= 1024
    assert "@system-service" in d["SystemCallFilter"]
    assert any(v.startswith("~") and "@privileged" in v for v in d["SystemCallFilter"])
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
                       "PrivateTmp": "yes", "PrivateDevices": "yes", "LockPersonality": "yes",
                       "RestrictSUIDSGID": "yes", "ProtectKernelTunables": "yes", "ProtectControlGroups": "yes",
                       "StateDirectoryMode": "0750", "ReadWritePaths": "/var/lib/callcenter"}.items():
        assert d.get(key) == [value], key
    assert set(d["RestrictAddressFamilies"][0].split()) == {"AF_INET", "AF_INET6", "AF_UNIX", "AF_NETLINK"}
    assert d["CapabilityBoundingSet"] == [""]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_accepts_the_units(tmp_path: Path) -> None:
    copies = []
    for unit in UNITS:
        name = unit.name.replace("@.service", "@1.service")    # a template is verified as an instance
        (tmp_path / name).write_text(unit.read_text())
        copies.append(str(tmp_path / name))
    res = subprocess.run(["systemd-analyze", "verify", "--man=no", *copies], capture_output=True, text=True,
                         timeout=60)
    # the install path /opt/callcenter does not exist on a build machine: everything else must be clean
    problems = [line for line in (res.stdout + res.stderr).splitlines()
                if line.strip() and "is not executable" not in line]
    assert problems == []
