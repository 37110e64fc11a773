"""Distribution-spec HTTP client: scheme and host selection, auth, retries, error mapping.

One ``httpx.Client`` pools connections per registry host. Responses are streamed; the
caller closes them. Redirects are followed; httpx drops ``Authorization`` when a redirect
leaves the origin (blob GETs are often 307s to object storage), as DS "API" requires.
The transport is injectable so unit tests run on ``httpx.MockTransport``.
"""

from __future__ import annotations

import base64
import copy

# httpx encodes host names with the idna codec, imported at the first request otherwise:
# ~3 ms and two files to read in the first pull after the page cache was dropped.
import encodings.idna  # noqa: F401
import json
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpcore
import httpx

from services.core.config import RegistryConfig
from services.core.logging import get_logger
from services.registry.auth import (
    Challenge,
    TokenCache,
    load_credentials,
    parse_challenges,
    scope_for,
)
from vocab.errors import (
    InvalidArgument,
    MuelleError,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
)
from vocab.reference import DEFAULT_DOMAIN, is_loopback
from vocab.version import VERSION

DOCKER_HUB_API = "registry-1.docker.io"
DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
MAX_RETRIES = 3
_MAX_RETRY_AFTER = 10.0
_ERROR_BODY_LIMIT = 64 * 1024
# httpcore reads an HTTP/1.1 response 64 KiB at a time, and each read costs ~25 us of Python
# in httpcore and h11: a 200 MB blob took 3,200 of them. A read returns what the socket has,
# so a slow link still hands on small pieces as they come; a fast one (a loopback registry)
# now fills 1 MiB reads: the registry service's CPU for a cold pull of 5 x 40 MiB went
# from ~0.27 to ~0.21 CPU-s (8 runs each, alternated). Every client of this process reads so.
httpcore.HTTP11Connection.READ_NUM_BYTES = 1 << 20


@dataclass(frozen=True)
class Location:
    """Where a caller may GET something itself: the URL and the headers to send."""

    url: str
    headers: dict[str, str]
    length: int | None  # the HEAD answer's Content-Length, when it had one


def _reason(exc: Exception) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out ({type(exc).__name__})"
    text = str(exc) or type(exc).__name__
    return text


def unreachable(host: str, exc: Exception) -> Unavailable:
    return Unavailable(f"cannot reach registry {host}: {_reason(exc)}")


def _error_codes(body: bytes) -> list[tuple[str, str]]:
    """(code, message) pairs of a distribution error body, [] when it is not one."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return []
    errors = data.get("errors") if isinstance(data, dict) else None
    if not isinstance(errors, list):
        return []
    return [(str(e.get("code", "")), str(e.get("message", "")))
            for e in errors if isinstance(e, dict)]


def map_error(status: int, body: bytes, host: str, kind: str, what: str) -> MuelleError:
    """Turn a failed registry response into a typed error. ``kind`` is "manifest" or
    "blob" and ``what`` the reference or digest asked for."""
    codes = _error_codes(body)
    names = {code for code, _ in codes}
    detail = "; ".join(f"{c}: {m}" if m else c for c, m in codes) or f"HTTP {status}"
    if status == 404 or names & {"MANIFEST_UNKNOWN", "BLOB_UNKNOWN", "NAME_UNKNOWN"}:
        if "NAME_UNKNOWN" in names:
            return NotFound(f"repository for {what} not found: repository unknown")
        return NotFound(f"{kind} for {what} not found: {kind} unknown")
    if status == 401 or "UNAUTHORIZED" in names:
        return Unauthenticated(f"unauthorized: authentication required for {what} ({detail})")
    if status == 403 or "DENIED" in names:
        return PermissionDenied(f"access to {what} denied by {host} ({detail})")
    if status == 429 or "TOOMANYREQUESTS" in names:
        return Unavailable(f"registry {host} is rate limiting requests ({detail})")
    if status >= 500:
        return Unavailable(f"registry {host} failed: HTTP {status} ({detail})")
    return InvalidArgument(f"registry {host} rejected the request for {what}: "
                           f"HTTP {status} ({detail})")


def tls_context(certs: Path, client_certs: bool = True) -> ssl.SSLContext:
    """System CAs plus the *.crt of a certs.d dir, and its client certificate if any
    (Docker's rules: a name.cert needs its name.key) unless ``client_certs`` is False."""
    ctx = ssl.create_default_context()
    try:
        for ca in sorted(certs.glob("*.crt")):
            ctx.load_verify_locations(cafile=str(ca))
        for cert in sorted(certs.glob("*.cert")) if client_certs else ():
            key = cert.with_suffix(".key")
            if not key.exists():
                raise InvalidArgument(f"missing key {key.name} for client certificate "
                                      f"{cert}")
            ctx.load_cert_chain(str(cert), str(key))
    except (ssl.SSLError, OSError) as exc:
        raise InvalidArgument(f"bad TLS material in {certs}: {exc}") from None
    return ctx


class RegistryHTTP:
    """Requests to ``/v2/`` endpoints of any registry, authenticated as needed.

    ``anonymous``: never use the engine's credentials, neither stored logins nor certs.d
    client certificates (anonymous tokens are still fetched): what the mirror endpoint
    serves to callers it cannot identify must be what the registry gives anyone."""

    def __init__(
        self,
        settings: RegistryConfig | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        retries: int = MAX_RETRIES,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        anonymous: bool = False,
    ) -> None:
        self._settings = settings or RegistryConfig()
        self._insecure = set(self._settings.insecure_registries)
        self._mirrors = dict(self._settings.mirrors)
        self._anonymous = anonymous
        self._credentials = {} if anonymous else load_credentials(self._settings.auth_file)
        self._sleep = sleep
        self._retries = retries
        self._tokens = TokenCache()
        self._basic_hosts: set[str] = set()
        self._bearer: dict[str, str] = {}  # domain -> a registry token given for one call
        self._transport = transport
        self._timeout = timeout
        self._client = self._new_client(ssl.create_default_context())  # the system CAs
        self._tls_clients: dict[str, httpx.Client] = {}  # hosts with a certs.d entry

    def _new_client(self, verify: ssl.SSLContext) -> httpx.Client:
        return httpx.Client(
            transport=self._transport,
            timeout=self._timeout,
            follow_redirects=True,
            verify=verify,
            # Blobs are hashed as stored: ask for no content coding (one sent anyway
            # is decoded by httpx before hashing).
            headers={"User-Agent": f"muelle/{VERSION}", "Accept-Encoding": "identity"},
        )

    def close(self) -> None:
        self._client.close()
        for client in self._tls_clients.values():
            client.close()

    def _certs_for(self, host: str) -> Path | None:
        d = Path(self._settings.certs_dir) / host
        return d if self._settings.certs_dir and d.is_dir() else None

    def _client_for(self, url: str) -> httpx.Client:
        """The client for ``url``'s host: one that trusts its certs.d CAs and presents its
        client certificate, else the shared one (system CAs)."""
        host = httpx.URL(url).netloc.decode()
        certs = self._certs_for(host)
        if certs is None:
            return self._client
        if host not in self._tls_clients:
            self._tls_clients[host] = self._new_client(
                tls_context(certs, client_certs=not self._anonymous))
        return self._tls_clients[host]

    def base_url(self, domain: str) -> str:
        """Scheme and API host for a reference domain (docker.io -> registry-1.docker.io)."""
        host = DOCKER_HUB_API if domain == DEFAULT_DOMAIN else domain
        # Loopback and insecure registries speak plain HTTP, unless certs.d says TLS.
        plain = (is_loopback(domain) or domain in self._insecure) \
            and self._certs_for(domain) is None
        return f"{'http' if plain else 'https'}://{host}"

    def request(
        self,
        method: str,
        domain: str,
        repo_path: str,
        url_path: str,
        *,
        kind: str,
        what: str,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        actions: str = "pull",
        retries: int | None = None,
    ) -> httpx.Response:
        """Send ``method url_path`` to ``domain`` for repository ``repo_path`` and return
        the streaming 2xx response (the caller closes it); typed errors otherwise.

        ``url_path`` may also be an absolute URL (an upload Location). ``content`` is the
        request body; ``actions`` the token scope's actions ("pull,push" for uploads);
        ``retries`` of a busy registry's answers, instead of the client's."""
        absolute = url_path.startswith(("http://", "https://"))
        if actions == "pull" and not absolute:
            # A mirror answers pulls in the registry's place (auth and errors are its own).
            domain = self._mirrors.get(domain, domain)
        url = url_path if absolute else self.base_url(domain) + url_path
        scope = scope_for(repo_path, actions)
        log = get_logger(registry=domain, url=url_path)
        attempt = 0
        authenticated = False
        while True:
            send_headers = dict(headers or {})
            send_headers.update(self._auth_header(domain, scope))
            resp = self._send(method, url, send_headers, domain, content)
            status = resp.status_code
            if status < 400:
                return resp
            body = self._read_error_body(resp)
            if status == 401 and not authenticated:
                challenges = parse_challenges(resp.headers.get("WWW-Authenticate", ""))
                if self._authorize(domain, scope, challenges):
                    authenticated = True
                    continue
            if (status == 429 or status >= 500) and attempt < (
                    self._retries if retries is None else retries):
                delay = self._retry_delay(resp, attempt)
                log.warning("registry busy, retrying", status=status, delay=delay)
                self._sleep(delay)
                attempt += 1
                continue
            raise map_error(status, body, domain, kind, what)

    def locate(self, domain: str, repo_path: str, url_path: str, *, kind: str,
               what: str) -> Location | str:
        """Where and with which headers a caller may GET ``url_path`` of ``domain`` for
        a pull itself, found with a HEAD (authenticated and redirected as a GET would be,
        not retried); a string saying why not when what it needs must stay here: a
        password (Basic auth) or the certs.d material of a host on the way. Typed errors
        as ``request``'s."""
        host = self._mirrors.get(domain, domain)  # as request() asks for a pull
        api = httpx.URL(self.base_url(host)).netloc.decode()  # docker.io's is another
        if self._certs_for(host) is not None or self._certs_for(api) is not None:
            return f"{api} has a certs.d entry (its CA or client certificate stays here)"
        # No retries: a registry that is busy now is FetchBlob's to wait for.
        resp = self.request("HEAD", domain, repo_path, url_path, kind=kind, what=what,
                            retries=0)
        resp.close()
        for hop in (*resp.history, resp):
            netloc = hop.url.netloc.decode()
            if self._certs_for(netloc) is not None:
                return f"{netloc} has a certs.d entry (its CA or client certificate stays here)"
        headers = self._auth_header(host, scope_for(repo_path, "pull"))
        if headers and not headers["Authorization"].startswith("Bearer "):
            return f"{host} takes a password (Basic auth), which stays here"
        # The URL asked, not where a redirect led (object storage URLs are signed per
        # method): the caller's GET is redirected in its turn.
        first = resp.history[0].request if resp.history else resp.request
        length = resp.headers.get("Content-Length", "")
        return Location(str(first.url), headers, int(length) if length.isdigit() else None)

    def for_call(self, domain: str, credentials: tuple[str, str] | None,
                 registry_token: str = "") -> RegistryHTTP:
        """A view of this client for one call with its own credentials for ``domain``
        (a pull's, never stored): the same connections and settings, none of the stored
        logins, and tokens of its own (tokens fetched with other credentials must not
        serve it, nor its tokens others)."""
        view = copy.copy(self)
        view._credentials = {domain: credentials} if credentials else {}
        view._tokens = TokenCache()
        view._basic_hosts = set()
        view._bearer = {domain: registry_token} if registry_token else {}
        return view

    def set_credentials(self, domain: str, credentials: tuple[str, str] | None) -> None:
        """Use (or, with None, stop using) these credentials for ``domain`` from now on;
        tokens fetched with the old ones are dropped."""
        if credentials is None:
            self._credentials.pop(domain, None)
        else:
            self._credentials[domain] = credentials
        self._basic_hosts.discard(domain)
        self._tokens.forget(domain)

    def ping(self, domain: str, credentials: tuple[str, str]) -> None:
        """``GET /v2/`` authenticated with ``credentials`` (Basic, or a token fetched with
        them). Unauthenticated when the registry refuses them."""
        url = self.base_url(domain) + "/v2/"
        resp = self._send("GET", url, {}, domain)
        body = self._read_error_body(resp)
        if resp.status_code == 200:
            return  # a registry without auth accepts anyone, as with docker login
        if resp.status_code != 401:
            raise map_error(resp.status_code, body, domain, "registry", domain)
        challenges = parse_challenges(resp.headers.get("WWW-Authenticate", ""))
        headers: dict[str, str] = {}
        for challenge in challenges:
            if challenge.scheme == "bearer" and challenge.params.get("realm"):
                token, _ = self._fetch_token(domain, "", challenge, credentials)
                headers = {"Authorization": f"Bearer {token}"}
                break
            if challenge.scheme == "basic":
                raw = base64.b64encode(":".join(credentials).encode()).decode()
                headers = {"Authorization": f"Basic {raw}"}
                break
        else:
            raise Unauthenticated(f"registry {domain} asks for an unsupported "
                                  "authentication scheme")
        resp = self._send("GET", url, headers, domain)
        body = self._read_error_body(resp)
        if resp.status_code == 401:
            raise Unauthenticated(f"unauthorized: incorrect username or password for {domain}")
        if resp.status_code >= 400:
            raise map_error(resp.status_code, body, domain, "registry", domain)

    def get_url(self, url: str, headers: Mapping[str, str] | None = None) -> httpx.Response:
        """A plain streaming GET of an absolute URL (foreign layers), no credentials."""
        host = httpx.URL(url).host
        resp = self._send("GET", url, dict(headers or {}), host)
        if resp.status_code >= 400:
            body = self._read_error_body(resp)
            raise map_error(resp.status_code, body, host, "blob", url)
        return resp

    def _send(self, method: str, url: str, headers: dict[str, str],
              host: str, content: bytes | None = None) -> httpx.Response:
        try:
            client = self._client_for(url)
            request = client.build_request(method, url, headers=headers, content=content)
            return client.send(request, stream=True)
        except httpx.InvalidURL as exc:
            raise InvalidArgument(f"invalid registry URL {url}: {exc}") from None
        except httpx.TooManyRedirects as exc:
            raise Unavailable(f"registry {host}: too many redirects ({exc})") from None
        except (httpx.TransportError, OSError) as exc:
            error = unreachable(host, exc)
            if "CERTIFICATE_VERIFY_FAILED" in str(exc):
                error = Unavailable(f"{error}: the registry's TLS certificate is not trusted; "
                                    f"put its CA in {self._settings.certs_dir}/{host}/ca.crt")
            raise error from None

    @staticmethod
    def _read_error_body(resp: httpx.Response) -> bytes:
        try:
            body = b""
            for chunk in resp.iter_bytes():
                body += chunk
                if len(body) >= _ERROR_BODY_LIMIT:
                    break
            return body
        except httpx.HTTPError:
            return b""
        finally:
            resp.close()

    def _retry_delay(self, resp: httpx.Response, attempt: int) -> float:
        after = resp.headers.get("Retry-After", "")
        if after.isdigit():
            return min(float(after), _MAX_RETRY_AFTER)
        return min(0.25 * 2.0**attempt, _MAX_RETRY_AFTER)

    def _auth_header(self, domain: str, scope: str) -> dict[str, str]:
        token = self._tokens.get(domain, scope) or self._bearer.get(domain)
        if token:
            return {"Authorization": f"Bearer {token}"}
        if domain in self._basic_hosts and domain in self._credentials:
            user, password = self._credentials[domain]
            raw = base64.b64encode(f"{user}:{password}".encode()).decode()
            return {"Authorization": f"Basic {raw}"}
        return {}

    def _authorize(self, domain: str, scope: str, challenges: list[Challenge]) -> bool:
        """Act on a 401's challenges; True when a retry with credentials makes sense."""
        for challenge in challenges:
            if challenge.scheme == "bearer" and challenge.params.get("realm"):
                token, expires_in = self._fetch_token(domain, scope, challenge)
                self._tokens.put(domain, scope, token, expires_in)
                return True
        if any(c.scheme == "basic" for c in challenges) and domain in self._credentials:
            self._basic_hosts.add(domain)
            return True
        return False

    def _fetch_token(self, domain: str, scope: str, challenge: Challenge,
                     credentials: tuple[str, str] | None = None) -> tuple[str, float]:
        realm = challenge.params["realm"]
        if not realm.startswith(("https://", "http://")):
            raise Unauthenticated(f"registry {domain} sent an unusable token realm {realm!r}")
        params: dict[str, Any] = {}
        # A challenge may name several scopes, space-separated (a cross-repository mount:
        # push here, pull there); token servers take each as its own scope= parameter.
        scopes = (challenge.params.get("scope") or scope).split()
        if scopes:
            params["scope"] = scopes
        if challenge.params.get("service"):
            params["service"] = challenge.params["service"]
        auth = credentials or self._credentials.get(domain)
        realm_host = httpx.URL(realm).host
        try:
            resp = self._client_for(realm).get(realm, params=params, auth=auth)
        except httpx.InvalidURL as exc:
            raise Unauthenticated(f"registry {domain} sent an unusable token realm: {exc}") \
                from None
        except (httpx.TransportError, OSError) as exc:
            raise Unavailable(f"cannot reach token server {realm_host}: {_reason(exc)}") \
                from None
        if resp.status_code in (401, 403):
            raise Unauthenticated(f"unauthorized: token server {realm_host} refused access"
                                  f" to {' '.join(scopes) or domain}: "
                                  f"HTTP {resp.status_code}")
        if resp.status_code >= 400:
            raise Unavailable(f"token server {realm_host} failed: HTTP {resp.status_code}")
        try:
            data = resp.json()
        except ValueError:
            data = None
        token = (data.get("token") or data.get("access_token")) if isinstance(data, dict) \
            else None
        if not isinstance(token, str) or not token:
            raise Unauthenticated(f"token server {realm_host} returned no token")
        expires_in = data.get("expires_in") if isinstance(data, dict) else None
        ttl = float(expires_in) if isinstance(expires_in, int | float) and expires_in > 0 \
            else 60.0
        get_logger(registry=domain).debug("got registry token", scope=" ".join(scopes))
        return token, ttl
