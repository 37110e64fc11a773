"""A token server for the distribution registry's `auth: token` mode, for tests.

It checks HTTP Basic credentials and answers with a JWT (RS256) granting what the scope
asks for; the key signs with the openssl CLI and the certificate travels in the `x5c`
header, which the registry verifies against its `rootcertbundle`. It counts the tokens it
issued, so tests can see caching.
"""

from __future__ import annotations

import base64
import json
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

SERVICE = "muelle-test-registry"
ISSUER = "muelle-test-issuer"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    def __init__(self, cert: Path, key: Path, users: dict[str, str]) -> None:
        self.cert, self.key, self.users = cert, key, users
        der = subprocess.run(["openssl", "x509", "-in", str(cert), "-outform", "DER"],
                             check=True, capture_output=True).stdout
        self._x5c = base64.b64encode(der).decode()
        self.issued: list[str] = []  # scopes of the tokens issued
        self.refused = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                server._handle(self)

            def log_message(self, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            # socketserver's backlog of 5 drops connections when a loaded machine is slow
            # to accept (seen once: "Server disconnected without sending a response").
            request_queue_size = 128

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.realm = f"http://127.0.0.1:{self.httpd.server_address[1]}/token"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def registry_config(self) -> str:
        """The `auth:` section of the registry's config.yml."""
        return (f"auth:\n  token:\n    realm: {self.realm}\n    service: {SERVICE}\n"
                f"    issuer: {ISSUER}\n    rootcertbundle: {self.cert}\n")

    def __enter__(self) -> TokenServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _user(self, header: str) -> str | None:
        if not header.startswith("Basic "):
            return None
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        return user if self.users.get(user) == password else None

    def _handle(self, req: BaseHTTPRequestHandler) -> None:
        user = self._user(req.headers.get("Authorization", ""))
        if user is None:
            self.refused += 1
            req.send_response(401)
            req.end_headers()
            return
        query = parse_qs(urlparse(req.path).query)
        access = []
        for scope in query.get("scope", []):
            kind, name, actions = scope.split(":", 2) if scope.count(":") >= 2 else ("", "", "")
            if kind == "repository":
                access.append({"type": kind, "name": name, "actions": actions.split(",")})
            self.issued.append(scope)
        token = self._sign({"iss": ISSUER, "sub": user, "aud": SERVICE,
                            "exp": int(time.time()) + 300, "nbf": int(time.time()) - 10,
                            "iat": int(time.time()), "jti": uuid.uuid4().hex,
                            "access": access})
        body = json.dumps({"token": token, "expires_in": 300}).encode()
        req.send_response(200)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        req.wfile.write(body)

    def _sign(self, claims: dict) -> str:
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self._x5c]}
        signing_input = (_b64(json.dumps(header).encode()) + "."
                         + _b64(json.dumps(claims).encode()))
        signature = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(self.key)],
                                   input=signing_input.encode(), check=True,
                                   capture_output=True).stdout
        return signing_input + "." + _b64(signature)
