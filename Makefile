# muelle: every target installs what it needs on a fresh Debian machine (as root).
SHELL := /bin/bash
VENV  ?= .venv
PY    := $(VENV)/bin/python
PROTO_SRC := $(shell find protos -name '*.proto')
APT_PACKAGES := curl docker.io docker-compose docker-registry busybox-static tini runc crun skopeo umoci iptables iproute2 libseccomp2 python3-venv gcc libc6-dev podman nodejs containernetworking-plugins

.PHONY: setup apt venv launcher native protos contracts bytecode node up down demo test lint bench test-cgroup2 clean

setup: apt venv launcher native protos bytecode

# System packages: the real registry, busybox for test images, the peer runtimes, and
# the other engines (docker.io, podman) that the suite runs muelle-runtime under, the CNI
# plugins that muelle-cri runs per pod with [cri] cni_conf_dir.
apt: .stamps/apt
.stamps/apt:
	@mkdir -p .stamps
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@touch $@

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	@# compat: a plain path in a .pth instead of an import-hook finder, which costs every
	@# Python process of ours (the CLI above all) ~19 ms at start. Plain -e if a future
	@# setuptools drops the mode.
	@$(PY) -m pip install -q -e '.[dev]' --config-settings editable_mode=compat \
		|| $(PY) -m pip install -q -e '.[dev]'
	@echo "$(CURDIR)/gen" > $$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/muelle-gen.pth
	@touch $@

# The `muelle` command without `site` at start (~5 ms of every command): see launcher.py.
launcher: $(VENV)/.launcher
$(VENV)/.launcher: clients/cli/launcher.py $(VENV)/.installed
	@$(PY) -m clients.cli.launcher $(VENV)/bin/muelle
	@touch $@

# The native tail of the per-container monitor (services/shim/native/muelle-monitor.c):
# a long-running container's monitor execs into it (gcc from the apt packages above).
native: $(VENV)/bin/muelle-monitor $(VENV)/.runtime-front
$(VENV)/bin/muelle-monitor: services/shim/native/muelle-monitor.c $(VENV)/.installed
	@gcc -O2 -Wall -Wextra -Werror -o $@ $<

# The `muelle-runtime` command is the native front (services/runtime/native/
# muelle-runtime.c): it answers state/start/kill/delete itself and hands every other call
# to the Python runtime, whose interpreter and checkout it names at build time. It replaces
# pip's script, which pip writes again on every install (hence the stamp after .installed).
$(VENV)/.runtime-front: services/runtime/native/muelle-runtime.c $(VENV)/.installed
	@gcc -O2 -Wall -Wextra -Werror -DMUELLE_PYTHON='"$(CURDIR)/$(PY)"' \
		-DMUELLE_ROOT='"$(CURDIR)"' -o $(VENV)/bin/.muelle-runtime.tmp $<
	@mv $(VENV)/bin/.muelle-runtime.tmp $(VENV)/bin/muelle-runtime
	@touch $@

# Generated code lives in gen/ (never edited by hand, not committed).
protos: gen/.stamp
gen/.stamp: $(PROTO_SRC) $(VENV)/.installed
	@rm -rf gen && mkdir -p gen
	@PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) -m grpc_tools.protoc -Iprotos --python_out=gen --grpc_python_out=gen --mypy_out=quiet:gen --mypy_grpc_out=quiet:gen $(PROTO_SRC)
	@find gen -type d -exec touch {}/__init__.py \;
	@$(PY) -m clients.sdk.schema_gen gen/muelle/lite_schema.py
	@touch $@

# After a change to protos/: refuse a breaking one, record the descriptors
# (tests/contracts/snapshot.binpb) and regenerate protos/REFERENCE.md. The suite checks both.
contracts: setup
	@$(PY) -m tests.contracts.update

up: setup
	@deploy/muelle-up.sh

down:
	@deploy/muelle-down.sh

# Bytecode for our own modules, as an installed package has it: an environment with
# PYTHONDONTWRITEBYTECODE=1 (this machine's shell has it) would otherwise compile every
# module the CLI imports, gen/'s protobuf modules above all, on each command (~50 ms).
# compileall skips what is up to date.
bytecode: protos
	@$(PY) -m compileall -q -j 0 vocab clients services engine gen

demo: setup
	@deploy/demo.sh

# The Node.js client's packages (@grpc/grpc-js, @grpc/proto-loader), exactly as locked;
# tests/e2e/test_node_client.py runs its `npm test` against a real engine. npm ships with
# NodeSource's nodejs (this machine's); with Debian's own nodejs, apt-get install npm.
node: clients/node/node_modules/.package-lock.json
clients/node/node_modules/.package-lock.json: clients/node/package-lock.json .stamps/apt
	@cd clients/node && npm ci --no-audit --no-fund --loglevel=error

# Lint first: a ruff or mypy finding fails the suite (and CI) like a failing test.
test: setup lint node
	@$(VENV)/bin/pytest -q --durations=15 tests --ignore=tests/bench

lint: setup
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/mypy

bench: setup
	@$(VENV)/bin/pytest -q -s tests/bench

# The cgroup-heavy tests on a real cgroup v2 hierarchy, in a qemu guest (tests/vm/README.md).
test-cgroup2: setup
	@tests/vm/cgroup2.sh $(TESTS)

clean:
	@rm -rf gen .stamps
