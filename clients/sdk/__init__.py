"""The muelle Python SDK: a small typed client of the engine.v1 API.

    from clients.sdk import Client
    with Client() as c:                      # $MUELLE_HOST or unix:///run/muelle/gateway.sock
        c.pull("busybox")
        cid = c.create("busybox", ["echo", "hi"])
        code = c.run_attached(cid, on_output=lambda stream, data: print(data))

Errors are vocab.errors classes (NotFound, AlreadyExists, ...), never grpc ones.
"""

from clients.sdk.address import resolve_host

__all__ = ["Client", "resolve_host"]


def __getattr__(name: str) -> object:
    # Lazy: importing the package (e.g. for resolve_host) must not import grpc.
    if name == "Client":
        from clients.sdk.client import Client

        return Client
    raise AttributeError(name)
