"""tag, push, login and logout through the CLI against the real distribution registry;
what was pushed is read back with skopeo, an independent client."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.engine import Engine
from tests.support.registry import LocalRegistry, htpasswd_line

pytestmark = pytest.mark.root

USER, PASSWORD = "muelle", "s3cret-pw"


def pushed_digest(out: str, tag: str) -> str:
    match = re.search(rf"^{re.escape(tag)}: digest: (sha256:[0-9a-f]{{64}}) size: \d+$",
                      out, re.M)
    assert match, out
    return match.group(1)


def skopeo_digest(ref: str, *creds: str) -> str:
    out = subprocess.run(["skopeo", "inspect", "--tls-verify=false", *creds,
                          f"docker://{ref}"], check=True, capture_output=True, text=True)
    return str(json.loads(out.stdout)["Digest"])


def skopeo_copy_digest(ref: str, dest: Path, *creds: str) -> str:
    """Copy with skopeo into an OCI layout; the manifest digest it recorded."""
    proc = subprocess.run(["skopeo", "copy", "--quiet", "--src-tls-verify=false", *creds,
                           f"docker://{ref}", f"oci:{dest}:x"], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    index = json.loads((dest / "index.json").read_text())
    return str(index["manifests"][0]["digest"])


def test_tag_and_push_mounts_then_skips(engine: Engine, image: str, registry: LocalRegistry,
                                         tmp_path: Path) -> None:
    target = f"{registry.host}/pushed/busybox:2"
    engine.cli("tag", image, target)
    assert "pushed/busybox" in engine.cli("images").stdout
    out = engine.cli("push", target).stdout
    assert f"The push refers to repository [{registry.host}/pushed/busybox]" in out
    # The layer is already in demo/busybox of the same registry: mounted, not sent.
    assert "Mounted from demo/busybox" in out, out
    digest = pushed_digest(out, "2")
    assert skopeo_digest(target) == digest
    assert skopeo_copy_digest(target, tmp_path / "oci") == digest
    # Same digest as the image we pulled (the manifest went up byte for byte).
    inspect = json.loads(engine.cli("inspect", image).stdout)[0]
    assert digest in json.dumps(inspect)
    again = engine.cli("push", target).stdout
    assert "Layer already exists" in again and pushed_digest(again, "2") == digest


def test_push_to_an_empty_registry_uploads(engine: Engine, image: str,
                                           tmp_path: Path) -> None:
    with LocalRegistry(tmp_path / "other") as other:
        target = f"{other.host}/copy/busybox:3"
        engine.cli("tag", image, target)
        out = engine.cli("push", target).stdout
        assert "Pushed" in out and "Mounted" not in out, out
        digest = pushed_digest(out, "3")
        assert skopeo_copy_digest(target, tmp_path / "oci") == digest
        engine.cli("rmi", target)


def test_push_errors_are_one_line(engine: Engine, image: str, registry: LocalRegistry) -> None:
    proc = engine.cli("push", f"{registry.host}/never/tagged:1", check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "does not exist locally" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    proc = engine.cli("tag", "no-such-image", f"{registry.host}/x/y:1", check=False)
    assert proc.returncode != 0 and "No such image" in proc.stderr
    proc = engine.cli("tag", image, f"{registry.host}/x/y@sha256:" + "0" * 64, check=False)
    assert proc.returncode != 0 and "digest" in proc.stderr


@pytest.fixture
def auth_registry(tmp_path: Path) -> Iterator[LocalRegistry]:
    """A registry that wants Basic auth (htpasswd, bcrypt)."""
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(htpasswd_line(USER, PASSWORD))
    extra = f"auth:\n  htpasswd:\n    realm: muelle-test\n    path: {htpasswd}\n"
    with LocalRegistry(tmp_path / "auth", extra_config=extra) as reg:
        yield reg


def test_login_push_pull_logout(engine: Engine, image: str, auth_registry: LocalRegistry,
                                tmp_path: Path) -> None:
    host = auth_registry.host
    target = f"{host}/private/busybox:1"
    engine.cli("tag", image, target)
    denied = engine.cli("push", target, check=False)
    assert denied.returncode != 0 and "unauthorized" in denied.stderr.lower()
    assert len(denied.stderr.strip().splitlines()) == 1, denied.stderr

    wrong = engine.cli("login", "-u", USER, "--password-stdin", host, check=False,
                       input=b"wrong\n")
    assert wrong.returncode != 0 and "unauthorized" in wrong.stderr.lower()
    assert len(wrong.stderr.strip().splitlines()) == 1, wrong.stderr
    auth_file = engine.root / "registry" / "config.json"
    assert not auth_file.exists()

    ok = engine.cli("login", "-u", USER, "--password-stdin", host,
                    input=PASSWORD.encode() + b"\n")
    assert "Login Succeeded" in ok.stdout
    assert stat.S_IMODE(os.stat(auth_file).st_mode) == 0o600
    entry = json.loads(auth_file.read_text())["auths"][host]
    import base64
    assert base64.b64decode(entry["auth"]).decode() == f"{USER}:{PASSWORD}"

    out = engine.cli("push", target).stdout
    digest = pushed_digest(out, "1")
    creds = ("--src-creds", f"{USER}:{PASSWORD}")
    assert skopeo_copy_digest(target, tmp_path / "oci", *creds) == digest

    # Pull it back under another name (the blobs come from the private registry).
    engine.cli("rmi", target)
    pulled = engine.cli("pull", target).stdout
    assert f"Digest: {digest}" in pulled

    assert f"Removing login credentials for {host}" in engine.cli("logout", host).stdout
    assert host not in json.loads(auth_file.read_text()).get("auths", {})
    engine.cli("rmi", target)
    again = engine.cli("pull", target, check=False)
    assert again.returncode != 0 and "unauthorized" in again.stderr.lower()
    gone = engine.cli("logout", host, check=False)
    assert gone.returncode != 0 and "Not logged in" in gone.stderr
