"""/etc/passwd and /etc/group lines as runc's user package reads them (malformed lines
are skipped). Used where a user or group name is resolved in an image's or a container's
files: the shim (a container's USER) and the image store (a Dockerfile's COPY --chown)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Passwd:
    name: str
    uid: int
    gid: int
    home: str


@dataclass
class Group:
    name: str
    gid: int
    members: list[str]


def parse_passwd(data: bytes) -> list[Passwd]:
    out = []
    for line in data.decode(errors="replace").splitlines():
        fields = line.strip().split(":")
        if len(fields) < 4 or line.startswith("#"):
            continue
        try:
            out.append(Passwd(fields[0], int(fields[2]), int(fields[3]),
                               fields[5] if len(fields) > 5 else ""))
        except ValueError:
            continue
    return out


def parse_group(data: bytes) -> list[Group]:
    out = []
    for line in data.decode(errors="replace").splitlines():
        fields = line.strip().split(":")
        if len(fields) < 3 or line.startswith("#"):
            continue
        try:
            gid = int(fields[2])
        except ValueError:
            continue
        members = [m for m in fields[3].split(",") if m] if len(fields) > 3 else []
        out.append(Group(fields[0], gid, members))
    return out
