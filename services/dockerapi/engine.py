"""The Docker API's connection to the gateway: muelle.engine.v1 over grpc.aio.

Calls raise the typed errors of vocab/errors.py (as the sync client in
services/core/client.py does), so handlers map them to Docker statuses in one place.
Streams are cancelled when the handler leaves them early (client gone, error).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import grpc
from muelle.engine.v1 import engine_pb2_grpc

from vocab.channel import TlsFiles, aio_channel
from vocab.errors import MuelleError, from_rpc_error, from_status


class Gateway:
    def __init__(self, address: str, tls: TlsFiles | None = None) -> None:
        # A tcp:// gateway is reached over mutual TLS with the Docker API's own
        # certificate ([tls.dockerapi]), as every service reaches its peers.
        self.channel = aio_channel(address, tls)
        self.stub = engine_pb2_grpc.EngineStub(self.channel)

    async def call(self, method: str, request: Any) -> Any:
        """A unary call."""
        try:
            return await getattr(self.stub, method)(request)
        except grpc.aio.AioRpcError as err:
            raise from_rpc_error(err, "gateway") from None

    async def stream(self, method: str, request: Any) -> AsyncGenerator[Any, None]:
        """A server stream, message by message."""
        call = getattr(self.stub, method)(request)
        try:
            async for message in call:
                yield message
        except grpc.aio.AioRpcError as err:
            raise from_rpc_error(err, "gateway") from None
        finally:
            call.cancel()

    def bidi(self, method: str) -> BidiStream:
        return BidiStream(getattr(self.stub, method)())

    async def close(self) -> None:
        await self.channel.close(None)


class BidiStream:
    """A bidirectional call (exec, attach with stdin) with typed errors."""

    def __init__(self, call: Any) -> None:
        self.call = call

    async def send(self, message: Any) -> None:
        try:
            await self.call.write(message)
        except grpc.aio.AioRpcError as err:
            raise from_rpc_error(err, "gateway") from None
        except asyncio.InvalidStateError:
            raise await self._ended() from None

    async def done_writing(self) -> None:
        try:
            await self.call.done_writing()
        except grpc.aio.AioRpcError as err:
            raise from_rpc_error(err, "gateway") from None
        except asyncio.InvalidStateError:
            raise await self._ended() from None

    async def _ended(self) -> MuelleError:
        """Why the gateway ended the call while we were still sending (grpc's aio raises
        InvalidStateError on a write to a finished call): its status, as a typed error.
        code() and details(), not awaiting the call: a bidirectional call has no reply."""
        code = await self.call.code()
        if code is grpc.StatusCode.OK:
            return MuelleError("the gateway answered before the request ended")
        return from_status(code.value[0], await self.call.details() or "", "gateway")

    async def __aiter__(self) -> AsyncIterator[Any]:
        try:
            while True:
                message = await self.call.read()
                if message is grpc.aio.EOF:  # type: ignore[attr-defined]
                    return
                yield message
        except grpc.aio.AioRpcError as err:
            raise from_rpc_error(err, "gateway") from None

    async def result(self) -> Any:
        """The reply of a client-streaming call (docker cp into a container)."""
        try:
            return await self.call
        except grpc.aio.AioRpcError as err:
            raise from_rpc_error(err, "gateway") from None

    def cancel(self) -> None:
        self.call.cancel()
