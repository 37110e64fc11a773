"""Restart policies as Docker spells them (`--restart no|on-failure[:N]|always|
unless-stopped`): parsed once here, checked by the gateway, applied by the shim."""

from __future__ import annotations

from dataclasses import dataclass

from vocab.errors import InvalidArgument


@dataclass(frozen=True)
class Policy:
    name: str = "no"  # "no", "on-failure", "always", "unless-stopped"
    max_retries: int = 0  # on-failure only; 0 = no limit

    def wants_restart(self, exit_code: int, restarts: int, manually_stopped: bool) -> bool:
        if self.name == "no" or manually_stopped:
            return False
        if self.name == "on-failure":
            return exit_code != 0 and (not self.max_retries or restarts < self.max_retries)
        return True

    def text(self) -> str:
        return f"{self.name}:{self.max_retries}" if self.max_retries else self.name


def parse(text: str) -> Policy:
    """Docker's --restart syntax; InvalidArgument with Docker's wording otherwise."""
    name, sep, count = (text or "no").partition(":")
    if name not in ("no", "on-failure", "always", "unless-stopped"):
        raise InvalidArgument(f"invalid restart policy '{text}'")
    if sep:
        if name != "on-failure":
            raise InvalidArgument(f"maximum retry count cannot be used with restart policy "
                                  f"'{name}'")
        if not count.isdigit():
            raise InvalidArgument(f"invalid restart policy '{text}': maximum retry count "
                                  "must be a number")
        return Policy(name, int(count))
    return Policy(name)
