from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import pytest

from services.core.config import RegistryConfig
from services.registry.auth import TokenCache, load_credentials, parse_challenges
from services.registry.http import RegistryHTTP, map_error
from vocab.errors import (
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
)

from .fakeupstream import HOST, Upstream


def client(handler: httpx.MockTransport | None = None, sleeps: list[float] | None = None,
           **settings: object) -> RegistryHTTP:
    def sleep(delay: float) -> None:
        if sleeps is not None:
            sleeps.append(delay)

    return RegistryHTTP(RegistryConfig(**settings), transport=handler,  # type: ignore[arg-type]
                        sleep=sleep)


def get(http: RegistryHTTP, domain: str = HOST, path: str = "demo/app") -> httpx.Response:
    resp = http.request("GET", domain, path, f"/v2/{path}/manifests/1", kind="manifest",
                        what=f"{domain}/{path}:1")
    resp.read()
    resp.close()
    return resp


@pytest.mark.parametrize(("domain", "insecure", "url"), [
    ("127.0.0.1:5000", [], "http://127.0.0.1:5000"),
    ("localhost:5000", [], "http://localhost:5000"),
    ("docker.io", [], "https://registry-1.docker.io"),
    ("ghcr.io", [], "https://ghcr.io"),
    ("myregistry:5000", ["myregistry:5000"], "http://myregistry:5000"),
])
def test_scheme_and_api_host(domain: str, insecure: list[str], url: str) -> None:
    assert client(insecure_registries=insecure).base_url(domain) == url


def test_requests_go_to_the_mapped_host() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json={})

    get(client(httpx.MockTransport(handler)), "docker.io", "library/busybox")
    assert seen == ["https://registry-1.docker.io/v2/library/busybox/manifests/1"]


def test_parse_challenges() -> None:
    got = parse_challenges('Basic realm="x", Bearer realm="https://a/token",'
                           'service="reg",scope="repository:a/b:pull,push" , Other')
    assert [c.scheme for c in got] == ["basic", "bearer", "other"]
    assert got[1].params == {"realm": "https://a/token", "service": "reg",
                             "scope": "repository:a/b:pull,push"}


def test_anonymous_token_flow_and_cache() -> None:
    up = Upstream(token="t0k")
    up.add_manifest("demo/app", "1", b"{}", "application/json")
    http = client(up.transport())
    assert get(http).status_code == 200
    assert get(http).status_code == 200
    assert up.token_requests == 1  # cached for the second request
    token_req = next(r for r in up.requests if r.url.host == "auth.test")
    assert token_req.url.params["service"] == "registry.test"
    assert token_req.url.params["scope"] == "repository:demo/app:pull"
    assert "Authorization" not in token_req.headers  # anonymous
    assert up.requests[-1].headers["Authorization"] == "Bearer t0k"


def test_each_scope_of_a_challenge_is_its_own_parameter() -> None:
    seen: list[httpx.Request] = []
    challenge = ('Bearer realm="http://auth.test/token",service="reg",'
                 'scope="repository:a/b:pull,push repository:c/d:pull"')

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.host == "auth.test":
            return httpx.Response(200, json={"token": "t"})
        if request.headers.get("Authorization") != "Bearer t":
            return httpx.Response(401, headers={"WWW-Authenticate": challenge})
        return httpx.Response(200, json={})

    get(client(httpx.MockTransport(handler)))
    token_req = next(r for r in seen if r.url.host == "auth.test")
    assert token_req.url.params.get_list("scope") == ["repository:a/b:pull,push",
                                                      "repository:c/d:pull"]


def test_token_cache_expires() -> None:
    now = [0.0]
    cache = TokenCache(clock=lambda: now[0])
    cache.put("h", "s", "tok", 0)  # servers that omit expires_in: 60 s
    assert cache.get("h", "s") == "tok"
    now[0] = 61.0
    assert cache.get("h", "s") is None


def test_token_rejected_after_retry_is_unauthenticated() -> None:
    up = Upstream(token="good")
    up.overrides["/token"] = lambda r: httpx.Response(200, json={"token": "bad"})
    with pytest.raises(Unauthenticated, match="authentication required"):
        get(client(up.transport()))


def test_token_server_refusal() -> None:
    up = Upstream(token="good")
    up.overrides["/token"] = lambda r: httpx.Response(401)
    with pytest.raises(Unauthenticated, match="token server"):
        get(client(up.transport()))


def test_basic_credentials_from_auth_file(tmp_path: Path) -> None:
    auth = tmp_path / "config.json"
    auth.write_text(json.dumps({"auths": {f"http://{HOST}": {
        "auth": base64.b64encode(b"me:secret").decode()}}}))
    assert load_credentials(str(auth)) == {HOST: ("me", "secret")}
    want = "Basic " + base64.b64encode(b"me:secret").decode()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.headers.get("Authorization") != want:
            return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="r"'})
        return httpx.Response(200, json={})

    assert get(client(httpx.MockTransport(handler), auth_file=str(auth))).status_code == 200


def test_redirect_to_other_host_drops_authorization() -> None:
    up = Upstream(token="t")
    seen: dict[str, str | None] = {}

    def storage(request: httpx.Request) -> httpx.Response:
        seen["auth"] = request.headers.get("Authorization")
        return httpx.Response(200, content=b"blob")

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "storage.test":
            return storage(request)
        if request.url.path.endswith("/manifests/1") and \
                request.headers.get("Authorization") == "Bearer t":
            return httpx.Response(307, headers={"Location": "https://storage.test/x?sig=1"})
        return up.handle(request)

    resp = get(client(httpx.MockTransport(handler)))
    assert resp.content == b"blob"
    assert seen == {"auth": None}


@pytest.mark.parametrize(("status", "code", "error", "message"), [
    (404, "MANIFEST_UNKNOWN", NotFound, "manifest for 127.0.0.1:5000/demo/app:1 not found"),
    (404, "NAME_UNKNOWN", NotFound, "repository unknown"),
    (404, "", NotFound, "manifest unknown"),
    (401, "UNAUTHORIZED", Unauthenticated, "authentication required"),
    (403, "DENIED", PermissionDenied, "denied"),
    (400, "NAME_INVALID", InvalidArgument, "NAME_INVALID"),
])
def test_error_mapping(status: int, code: str, error: type[Exception], message: str) -> None:
    body = json.dumps({"errors": [{"code": code, "message": "m"}]}).encode() if code else b""
    with pytest.raises(error, match=message):
        raise map_error(status, body, HOST, "manifest", f"{HOST}/demo/app:1")


def test_5xx_retries_with_backoff_then_unavailable() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(503, text="down")

    sleeps: list[float] = []
    with pytest.raises(Unavailable, match="HTTP 503"):
        get(client(httpx.MockTransport(handler), sleeps))
    assert len(calls) == 4 and sleeps == [0.25, 0.5, 1.0]


def test_429_honours_retry_after_then_succeeds() -> None:
    answers = [httpx.Response(429, headers={"Retry-After": "2"},
                              json={"errors": [{"code": "TOOMANYREQUESTS"}]}),
               httpx.Response(200, json={})]
    sleeps: list[float] = []
    resp = get(client(httpx.MockTransport(lambda r: answers.pop(0)), sleeps))
    assert resp.status_code == 200 and sleeps == [2.0]


@pytest.mark.parametrize("exc", [
    httpx.ConnectError("[Errno 111] Connection refused"),
    httpx.ConnectError("[Errno -2] Name or service not known"),
    httpx.ConnectTimeout("timed out"),
])
def test_unreachable_is_unavailable(exc: Exception) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    with pytest.raises(Unavailable, match=f"cannot reach registry {HOST}"):
        get(client(httpx.MockTransport(handler)))


def test_pulls_go_to_a_configured_mirror_pushes_do_not() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url}")
        return httpx.Response(200, json={})

    http = client(httpx.MockTransport(handler), mirrors={"registry.k8s.io": "127.0.0.1:5000"})
    get(http, "registry.k8s.io", "pause")
    resp = http.request("HEAD", "registry.k8s.io", "pause", "/v2/pause/blobs/sha256:ab",
                        kind="blob", what="x", actions="pull,push")
    resp.close()
    assert seen == ["GET http://127.0.0.1:5000/v2/pause/manifests/1",
                    "HEAD https://registry.k8s.io/v2/pause/blobs/sha256:ab"]


def test_one_call_credentials_are_its_own(tmp_path: Path) -> None:
    """for_call: a pull's credentials (CRI's AuthConfig) serve that call only; the stored
    logins serve the others, and neither sees the other's."""
    auth = tmp_path / "config.json"
    auth.write_text(json.dumps({"auths": {HOST: {
        "auth": base64.b64encode(b"stored:pw").decode()}}}))
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        header = request.headers.get("Authorization")
        seen.append(header)
        if header is None:
            return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="r"'})
        return httpx.Response(200, json={})

    shared = client(httpx.MockTransport(handler), auth_file=str(auth))
    get(shared.for_call(HOST, ("pod", "secret")))
    assert seen[-1] == "Basic " + base64.b64encode(b"pod:secret").decode()
    get(shared)
    assert seen[-1] == "Basic " + base64.b64encode(b"stored:pw").decode()
    # A registry token goes as a bearer token from the first request on.
    seen.clear()
    get(shared.for_call(HOST, None, registry_token="tok"))
    assert seen == ["Bearer tok"]
    # Credentials for one registry are not sent to another.
    seen.clear()
    with pytest.raises(Unauthenticated):
        get(shared.for_call("other.example:5000", ("pod", "secret")))
    assert seen == [None]
