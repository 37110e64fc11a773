"""One prepared OCI bundle for the runtime benchmark: busybox rootfs + ``runc spec`` config."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from pathlib import Path

from tests.support.images import busybox_layer


def prepare_bundle(bundle: Path, args: list[str], cgroups_path: str) -> Path:
    """Write ``bundle/rootfs`` (busybox_layer() extracted) and ``bundle/config.json``.

    The config is ``runc spec`` with ``args``, no terminal, no ambient capabilities, no
    network namespace (not what is measured) and a cgroup path of our own, so nothing lands
    in the host's cgroups.
    """
    rootfs = bundle / "rootfs"
    rootfs.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(busybox_layer().tar())) as tar:
        tar.extractall(rootfs, filter="tar")
    subprocess.run(["runc", "spec", "--bundle", str(bundle)], check=True, capture_output=True)
    config_path = bundle / "config.json"
    config = json.loads(config_path.read_text())
    config["process"]["args"] = args
    config["process"]["terminal"] = False
    # Ambient capabilities unset, as in the specs Docker and muelle's shim write (SPECS §6.1).
    config["process"].get("capabilities", {}).pop("ambient", None)
    linux = config["linux"]
    linux["namespaces"] = [ns for ns in linux["namespaces"] if ns["type"] != "network"]
    linux["cgroupsPath"] = cgroups_path
    config_path.write_text(json.dumps(config, indent=2))
    return bundle
