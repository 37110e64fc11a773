"""Environments merged as moby merges them: a container's config and so a committed
image's (merge(): the run's variables first, then the image's it did not set; what `docker
inspect` shows, without what only the process gets: HOSTNAME, a default PATH), and a
process's (ReplaceOrAppendEnvValues). Shared by the gateway (create, commit) and the
Docker API's inspect."""

from __future__ import annotations


def env_key(entry: str) -> str:
    return entry.split("=", 1)[0]


def merge_env(image_env: list[str], user_env: list[str]) -> list[str]:
    """User vars, then each image var whose key the user did not set (moby merge())."""
    if not user_env:
        return list(image_env)
    keys = {env_key(e) for e in user_env}
    return [*user_env, *(e for e in image_env if env_key(e) not in keys)]


def replace_or_append(base: list[str], overrides: list[str]) -> list[str]:
    """Apply ``overrides`` to ``base`` by key; a bare "KEY" (no "=") unsets KEY."""
    out = list(base)
    for entry in overrides:
        key = env_key(entry)
        idx = next((i for i, e in enumerate(out) if env_key(e) == key), None)
        if "=" not in entry:
            if idx is not None:
                out.pop(idx)
        elif idx is None:
            out.append(entry)
        else:
            out[idx] = entry
    return out
