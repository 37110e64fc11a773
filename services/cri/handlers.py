"""Runtime handlers (Kubernetes RuntimeClass): the handler a pod names picks the shim's
OCI runtime for its infra container and all its containers, as containerd's
``[plugins.cri.containerd.runtimes.<handler>]`` does.

Built in: ``runc``, ``crun`` and ``muelle-runtime`` (also as ``muelle``), each the shim's
runtime of that name; ``[cri] runtime_handlers`` adds names or maps them elsewhere (e.g.
``{ fast = "crun" }``, or a runtime of ``[shim.runtimes]``). The empty handler is the
shim's default runtime. Whether a handler's runtime is installed is the shim's to say, at
RunPodSandbox.
"""

from __future__ import annotations

from collections.abc import Mapping

from vocab.errors import NotFound

BUILT_IN = {"runc": "runc", "crun": "crun", "muelle-runtime": "muelle", "muelle": "muelle"}


class Handlers:
    def __init__(self, configured: Mapping[str, str]) -> None:
        self.table = {**BUILT_IN, **configured}

    def runtime(self, handler: str) -> str:
        """The engine runtime of ``handler``: "" (the engine's default) for "". An
        unknown handler is NOT_FOUND with containerd's words."""
        if not handler:
            return ""
        if handler not in self.table:
            raise NotFound(f"failed to get sandbox runtime: no runtime for {handler!r} is "
                           f"configured (known: {', '.join(sorted(self.table))})")
        return self.table[handler]

    def names(self) -> list[str]:
        """Every handler, the default ("") first (Status' runtime_handlers)."""
        return ["", *sorted(self.table)]
