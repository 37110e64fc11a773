from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from services.core import config
from vocab.errors import InvalidArgument


def test_defaults_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MUELLE_CONFIG", raising=False)
    monkeypatch.setenv("MUELLE_ROOT", "/tmp/r")
    monkeypatch.setenv("MUELLE_RUN", "/tmp/x")
    monkeypatch.setattr(config, "DEFAULT_CONFIG_FILE", Path("/nonexistent/muelle.toml"))
    cfg = config.load()
    assert cfg.root == Path("/tmp/r")
    assert cfg.address("gateway") == "unix:///tmp/x/gateway.sock"
    assert cfg.state_dir("imagestore") == Path("/tmp/r/imagestore")


def test_file_then_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MUELLE_ROOT", raising=False)
    monkeypatch.delenv("MUELLE_RUN", raising=False)
    f = tmp_path / "m.toml"
    f.write_text('root = "/srv/m"\n[addresses]\nregistry = "tcp://10.0.0.2:7400"\n'
                 '[shim]\ndefault_runtime = "runc"\n')
    cfg = config.load(str(f), run="/tmp/flagrun")
    assert cfg.root == Path("/srv/m")
    assert cfg.run == Path("/tmp/flagrun")
    assert cfg.address("registry") == "tcp://10.0.0.2:7400"
    assert cfg.shim.default_runtime == "runc"


@pytest.mark.parametrize("text", [
    "bogus = 1\n", "[shim]\nnope = 2\n", "root = \n",
    # the right key with the wrong type: refused here, not deep inside a service
    "[registry]\nparallel_ranges = \"4\"\n", "[registry]\ninsecure_registries = \"a:1\"\n",
    "[shim]\nlog_max_files = true\n", "[network]\nbridge = 7\n",
    "registry = 5\n", "root = 5\n", "log_level = 5\n", "[addresses]\ngateway = 1\n",
    "[registry]\ninsecure_registries = [1]\n", "[shim]\nruntimes = {runc = 2}\n",
    '[registry]\n"__dict__" = {}\n', "[registry]\nparallel_ranges = 0\n",
    "[registry]\nparallel_ranges = 100000\n",
    "[registry]\nblob_window_seconds = 0\n", "[registry]\nblob_min_bytes = -1\n",
    "[imagestore]\nmax_blob_bytes = 0\n", "[imagestore]\nmin_free_bytes = \"1G\"\n",
    "[imagestore]\nnope = 1\n",
    # not an interface name the kernel takes (IFNAMSIZ, no '/')
    '[network]\nbridge = "muelle-far-too-long"\n', '[network]\nbridge = "a/b"\n',
])
def test_bad_config_is_a_clear_error(tmp_path: Path, text: str) -> None:
    f = tmp_path / "m.toml"
    f.write_text(text)
    with pytest.raises(InvalidArgument, match=str(f)):
        config.load(str(f))


def test_the_example_config_loads() -> None:
    example = Path(__file__).resolve().parents[3] / "deploy/examples/muelle.toml"
    cfg = config.load(str(example))
    assert cfg.registry.parallel_ranges == 4
    # The example states the defaults of the pull limits.
    assert cfg.registry.blob_min_bytes == config.RegistryConfig().blob_min_bytes
    assert cfg.registry.blob_window_seconds == config.RegistryConfig().blob_window_seconds
    assert cfg.imagestore == config.ImageStoreConfig()


def test_each_root_has_its_own_bridge_and_cgroup_parent(monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path: Path) -> None:
    """Two engines with default configs must not share host-global names (issue 19.10)."""
    monkeypatch.delenv("MUELLE_CONFIG", raising=False)
    monkeypatch.setattr(config, "DEFAULT_CONFIG_FILE", Path("/nonexistent/muelle.toml"))
    monkeypatch.delenv("MUELLE_ROOT", raising=False)
    system = config.load()
    assert (system.network.bridge, system.shim.cgroup_parent) == ("muelle0", "muelle")
    monkeypatch.setenv("MUELLE_ROOT", "/tmp/one")
    one = config.load()
    monkeypatch.setenv("MUELLE_ROOT", "/tmp/two")
    two = config.load()
    assert one.network.bridge != two.network.bridge != "muelle0"
    assert one.shim.cgroup_parent != two.shim.cgroup_parent != "muelle"
    assert len(one.network.bridge) <= config.IFNAMSIZ
    again = config.load(root="/tmp/one")  # the same root: the same names, across restarts
    assert again.network.bridge == one.network.bridge
    assert again.shim.cgroup_parent == one.shim.cgroup_parent
    f = tmp_path / "m.toml"  # configured names win
    f.write_text('[network]\nbridge = "br7"\n[shim]\ncgroup_parent = "mine"\n')
    mine = config.load(str(f))
    assert (mine.network.bridge, mine.shim.cgroup_parent) == ("br7", "mine")


def test_runtimes_table_is_read(tmp_path: Path) -> None:
    """A table value ([shim.runtimes]) is not compared with bounds (a TypeError once)."""
    path = tmp_path / "muelle.toml"
    path.write_text('[shim.runtimes]\ngated = "/opt/gated-runc"\n')
    assert config.load(str(path)).shim.runtimes == {"gated": "/opt/gated-runc"}


def test_registry_mirrors_table_is_read(tmp_path: Path) -> None:
    path = tmp_path / "muelle.toml"
    path.write_text('[registry]\nmirrors = { "registry.k8s.io" = "127.0.0.1:5000" }\n')
    assert config.load(str(path)).registry.mirrors == {"registry.k8s.io": "127.0.0.1:5000"}


@pytest.mark.parametrize(("text", "message"), [
    ("[registry]\nparallel_ranges = \"4\"\n",
     "registry.parallel_ranges must be an integer, not '4'"),
    ("[registry]\nparallel_ranges = 17\n", "registry.parallel_ranges must be at most 16, not 17"),
    ("[imagestore]\nmin_free_bytes = -1\n", "imagestore.min_free_bytes must be at least 0"),
    ("[shim]\nlog_max_files = true\n", "shim.log_max_files must be an integer, not True"),
    ("[shim.runtimes]\nrunc = 2\n", "the items of shim.runtimes must be strings"),
    ("[cri]\nsandbox_command = [\"sleep\", 1]\n",
     "the items of cri.sandbox_command must be strings, not 1"),
    ("[gateway]\nuserns_remap = \"0:1:2\"\n", "gateway.userns_remap must be an array"),
    ("[dockerapi]\nport = 2375\n", "unknown key dockerapi.port"),
    ("run = 1979-05-27\n", "run must be a string, not datetime.date"),
    ("cri = []\n", "cri must be a table"),
])
def test_the_schema_refuses_naming_file_key_and_value(tmp_path: Path, text: str,
                                                      message: str) -> None:
    """The classes are the schema (types, msgspec.Meta bounds, no unknown key); a refusal
    reads "<file>: <key> must be ..., not <value>", never msgspec's own wording."""
    f = tmp_path / "m.toml"
    f.write_text(text)
    with pytest.raises(InvalidArgument) as caught:
        config.load(str(f))
    assert str(caught.value).startswith(f"{f}: {message}")
    assert "Expected `" not in str(caught.value) and "$." not in str(caught.value)


def test_every_setting_of_the_classes_is_a_key_of_the_file() -> None:
    """What the defaults hold, written out as a file would, parses back to the defaults:
    no field of a section is missing from the schema or typed differently there."""
    defaults = config.Config(tls={"": config.TlsConfig(), "gateway": config.TlsConfig()},
                             authz={"gateway": ["client-*"]})
    document = msgspec.to_builtins(defaults, enc_hook=str)
    tls = document.pop("tls")
    document["tls"] = {**tls[""], "gateway": tls["gateway"]}
    assert config.parse(document, "defaults.toml") == defaults
