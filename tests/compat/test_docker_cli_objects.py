"""The docker CLI's network, volume and port verbs against muelle's Docker API."""

from __future__ import annotations

import os
import socket
import urllib.request
import uuid
from pathlib import Path

from tests.compat.conftest import DockerCli


def test_user_network_with_an_alias_is_reached_by_name(docker: DockerCli,
                                                       pulled: str) -> None:
    net, srv = f"net-{uuid.uuid4().hex[:6]}", f"srv-{uuid.uuid4().hex[:6]}"
    docker("network", "create", "--label", f"owner={srv}", net)
    try:
        assert net in docker("network", "ls", "--format", "{{.Name}}").stdout.split()
        by_label = docker("network", "ls", "--filter", f"label=owner={srv}",
                          "--format", "{{.Name}} {{.Label \"owner\"}}").stdout
        assert by_label == f"{net} {srv}\n"
        docker("run", "-d", "--name", srv, "--network", net, "--network-alias", "web",
               pulled, "sh", "-c", "echo served > /tmp/i; exec httpd -f -p 80 -h /tmp")
        got = docker("run", "--rm", "--network", net, pulled, "sh", "-c",
                     "for i in $(seq 50); do wget -q -O- http://web/i && exit; "
                     "sleep 0.1; done; exit 1").stdout
        assert got == "served\n"
        inspect = docker("network", "inspect", "-f", "{{.Name}} {{.Driver}}", net).stdout
        assert inspect.split() == [net, "bridge"]
    finally:
        docker("rm", "-f", srv, check=False)
        docker("network", "rm", net)
    assert net not in docker("network", "ls", "--format", "{{.Name}}").stdout.split()


def test_named_volume_keeps_data_across_containers(docker: DockerCli, pulled: str) -> None:
    vol = f"vol-{uuid.uuid4().hex[:6]}"
    docker("volume", "create", vol)
    try:
        assert vol in docker("volume", "ls", "-q").stdout.split()
        docker("run", "--rm", "-v", f"{vol}:/data", pulled, "sh", "-c", "echo kept > /data/f")
        got = docker("run", "--rm", "--mount", f"type=volume,src={vol},dst=/d", pulled,
                     "cat", "/d/f").stdout
        assert got == "kept\n"
        assert docker("volume", "inspect", "-f", "{{.Driver}}", vol).stdout.strip() == "local"
    finally:
        docker("volume", "rm", vol)
    assert vol not in docker("volume", "ls", "-q").stdout.split()


def test_published_port_is_shown_and_served(docker: DockerCli, pulled: str) -> None:
    name = f"pub-{uuid.uuid4().hex[:6]}"
    docker("run", "-d", "--name", name, "-p", "127.0.0.1::80", pulled, "sh", "-c",
           "echo page > /tmp/i; exec httpd -f -p 80 -h /tmp")
    try:
        mapping = docker("port", name, "80").stdout.strip()
        host, _, port = mapping.splitlines()[0].rpartition(":")
        assert host == "127.0.0.1" and int(port) > 0
        ps = docker("ps", "--filter", f"name={name}", "--format", "{{.Ports}}").stdout
        assert f"127.0.0.1:{port}->80/tcp" in ps
        for _ in range(100):  # httpd may not listen yet right after start
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/i", timeout=5) as r:
                    assert r.read() == b"page\n"
                    break
            except OSError:
                continue
        else:
            raise AssertionError("the published port never answered")
    finally:
        docker("rm", "-f", name)


def test_ps_size_shows_the_writable_layer_and_the_virtual_size_as_dockerd(
        muelle_cli: DockerCli, dockerd_cli: DockerCli, pulled: str) -> None:
    seen = []
    for cli in (muelle_cli, dockerd_cli):
        name = f"size-{uuid.uuid4().hex[:6]}"
        cli("run", "--name", name, pulled, "sh", "-c", "head -c 1048576 /dev/zero > /f")
        try:
            seen.append(cli("ps", "-a", "-s", "--filter", f"name={name}", "--format",
                            "{{.Size}}").stdout)
        finally:
            cli("rm", name)
    assert seen[0] == seen[1]
    assert seen[0].startswith("1.05MB (virtual ")


def test_an_anonymous_volume_from_dash_v_path_as_on_dockerd(
        muelle_cli: DockerCli, dockerd_cli: DockerCli, pulled: str) -> None:
    """`-v /path` reaches the API as Config.Volumes (not Binds): a fresh volume each run."""
    seen = []
    for cli in (muelle_cli, dockerd_cli):
        name = f"anon-{uuid.uuid4().hex[:6]}"
        out = cli("run", "--name", name, "-v", "/vol", "-v", "/bound", "--mount",
                  "type=tmpfs,target=/t", pulled, "sh", "-c",
                  "grep -c ' /vol ' /proc/mounts; echo hi > /vol/f; cat /vol/f").stdout
        try:
            mounts = cli("inspect", "-f", "{{range .Mounts}}{{.Type}} {{.Destination}} "
                         "{{len .Name}} {{.RW}};{{end}}", name).stdout
        finally:
            cli("rm", "-v", name)
        seen.append((out, sorted(mounts.strip().split(";"))))  # dockerd's order varies
    assert seen[0] == seen[1]
    assert seen[0][0] == "1\nhi\n"


VOLUMES_FROM_READ = ("cat /named/f /anon/f /bound/h; for d in named anon bound; do "
                     "touch /$d/w 2>/dev/null && echo $d rw || echo $d ro; done")


def test_volumes_from_shares_volumes_and_binds_as_on_dockerd(
        muelle_cli: DockerCli, dockerd_cli: DockerCli, pulled: str, tmp_path: Path) -> None:
    """--volumes-from: the source's named and anonymous volumes and bind mounts at the
    same paths, read-only where it has them so or ":ro" says; a -v of the same path wins;
    `rm -v` of the source keeps the anonymous volume another container still uses."""
    host = tmp_path / "host"
    host.mkdir()
    (host / "h").write_text("host\n")
    seen = []
    for cli in (muelle_cli, dockerd_cli):
        tag = uuid.uuid4().hex[:6]
        src, vol, users = f"vf-src-{tag}", f"vf-vol-{tag}", [f"vf-u{i}-{tag}" for i in (1, 2)]
        cli("run", "--name", src, "-v", f"{vol}:/named", "-v", "/anon", "-v",
            f"{host}:/bound:ro", pulled, "sh", "-c", "echo n > /named/f; echo a > /anon/f")
        try:
            rw = cli("run", "--name", users[0], "--volumes-from", src, pulled, "sh", "-c",
                     VOLUMES_FROM_READ).stdout
            ro = cli("run", "--name", users[1], "--volumes-from", f"{src}:ro", "-v",
                     "/named", pulled, "sh", "-c", "ls /named; " + VOLUMES_FROM_READ,
                     check=False).stdout
            shown = cli("inspect", "-f", "{{.HostConfig.VolumesFrom}} {{range .Mounts}}"
                        "{{.Type}} {{.Destination}} {{.RW}};{{end}}", users[0]).stdout
            cli("rm", "-v", src)
            kept = cli("start", "-a", users[0]).stdout
            bad = [(p.returncode, p.stderr.replace(tag, "TAG")) for p in (
                cli("run", "--rm", "--volumes-from", f"nosuch-{tag}", pulled, "true",
                    check=False),
                cli("run", "--rm", "--volumes-from", f"{users[0]}:xyz", pulled, "true",
                    check=False))]
        finally:
            cli("rm", "-f", "-v", src, *users, check=False)
            cli("volume", "rm", vol, check=False)
        head, _, mounts = shown.strip().partition(" ")
        seen.append((rw, ro, head.replace(tag, "TAG"), sorted(mounts.split(";")), kept, bad))
    assert seen[0] == seen[1]
    assert seen[0][0] == "n\na\nhost\nnamed rw\nanon rw\nbound ro\n"


def test_links_on_a_user_network_as_on_dockerd(muelle_cli: DockerCli, dockerd_cli: DockerCli,
                                               pulled: str) -> None:
    """--link NAME:ALIAS on a user-defined network: the alias reaches that container, for
    the linking container only."""
    probe = ("for i in $(seq 50); do wget -q -O- http://database/i && break; sleep 0.1; "
             "done; ping -c 1 -W 1 db >/dev/null && echo db-too")
    seen = []
    for cli in (muelle_cli, dockerd_cli):
        tag = uuid.uuid4().hex[:6]
        net, db = f"lk-net-{tag}", f"lk-db-{tag}"
        cli("network", "create", net)
        try:
            cli("run", "-d", "--name", db, "--network", net, pulled, "sh", "-c",
                "echo served > /tmp/i; exec httpd -f -p 80 -h /tmp")
            linked = cli("run", "--rm", "--network", net, "--link", f"{db}:database",
                         pulled, "sh", "-c", probe.replace(" db ", f" {db} ")).stdout
            other = cli("run", "--rm", "--network", net, pulled, "sh", "-c",
                        "ping -c 1 -W 1 database", check=False)
            missing = cli("run", "--rm", "--network", net, "--link", f"nosuch-{tag}:x",
                          pulled, "true", check=False)
        finally:
            cli("rm", "-f", db, check=False)
            cli("network", "rm", net)
        seen.append((linked, other.returncode,
                     (missing.returncode, missing.stderr.replace(tag, "TAG"))))
    assert seen[0] == seen[1]
    assert seen[0][:2] == ("served\ndb-too\n", 1)


def test_legacy_links_on_the_default_bridge_are_refused_by_name(docker: DockerCli,
                                                                 pulled: str) -> None:
    name = f"lk-{uuid.uuid4().hex[:6]}"
    docker("run", "-d", "--name", name, pulled, "sleep", "60")
    try:
        proc = docker("run", "--rm", "--link", name, pulled, "true", check=False)
        assert proc.returncode == 125
        assert "legacy links" in proc.stderr and "user-defined network" in proc.stderr
    finally:
        docker("rm", "-f", name)


def test_inspect_shows_the_container_config_env_and_workdir_as_dockerd(
        muelle_cli: DockerCli, dockerd_cli: DockerCli, pulled: str) -> None:
    """Config.Env is the run's env, then the image's it did not set (no HOSTNAME, no
    default PATH: only the process gets those); WorkingDir what was asked or the image's
    ("" for none). One -e each: the docker CLI sends several in no fixed order."""
    seen = []
    for cli in (muelle_cli, dockerd_cli):
        shown = []
        for options in ([], ["-e", "PATH=/bin", "-w", "/tmp"], ["-e", "HOSTNAME=mine"],
                        ["-e", "UNSET"], ["-e", "KEPT=1"]):
            name = f"env-{uuid.uuid4().hex[:6]}"
            cli("create", "--name", name, *options, pulled, "true")
            try:
                shown.append(cli("inspect", "-f", "{{json .Config.Env}} {{.Config.WorkingDir}}",
                                 name).stdout)
            finally:
                cli("rm", name)
        seen.append(shown)
    assert seen[0] == seen[1]


def test_namespaces_dns_sysctls_and_system_paths_as_on_dockerd(
        muelle_cli: DockerCli, dockerd_cli: DockerCli, pulled: str) -> None:
    script = ("cat /etc/resolv.conf; cat /proc/sys/net/ipv4/ip_forward; "
              "readlink /proc/self/ns/pid; readlink /proc/self/ns/ipc; hostname; "
              "grep -c ' /proc/timer_list ' /proc/mounts; true")
    host = {"pid": os.readlink("/proc/self/ns/pid"), "ipc": os.readlink("/proc/self/ns/ipc"),
            "uts": socket.gethostname()}
    seen = []
    for cli in (muelle_cli, dockerd_cli):
        seen.append(cli("run", "--rm", "--dns", "10.0.0.53", "--dns-search", "example.com",
                        "--dns-option", "ndots:2", "--sysctl", "net.ipv4.ip_forward=1",
                        "--pid", "host", "--ipc", "host", "--uts", "host", "--security-opt",
                        "systempaths=unconfined", pulled, "sh", "-c", script).stdout)
        seen.append(cli("run", "--rm", pulled, "grep", "-c", " /proc/timer_list ",
                        "/proc/mounts").stdout)
    assert seen[0] == seen[2] and seen[1] == seen[3] == "1\n"
    assert seen[0] == ("search example.com\nnameserver 10.0.0.53\noptions ndots:2\n1\n"
                       f"{host['pid']}\n{host['ipc']}\n{host['uts']}\n0\n")
