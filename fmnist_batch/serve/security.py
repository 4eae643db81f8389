"""Which requests the server answers at all: checks on the Host and Origin headers, before any routing.

A server on 127.0.0.1 is still reachable from any web page the user opens. Two attacks use that:
- a cross-site form post: a page elsewhere POSTs photos (or junk) to http://127.0.0.1:8000/api/classify.
  The browser sends its Origin header, which is not ours: such unsafe requests get 403.
- DNS rebinding: evil.example first resolves to the attacker's server, then to 127.0.0.1, so the page
  can read our answers as same-origin ones. Its requests carry Host: evil.example: any Host that is not
  the address we listen on (or, on loopback, localhost / 127.0.0.1 / [::1]) gets 400.
A server bound to 0.0.0.0 or :: answers any Host (it is meant to be reached by whatever names point
at this machine), unless `allowed_hosts` names the ones it answers to.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARD_ADDRESSES = frozenset({"0.0.0.0", "::", ""})
#: methods that only read; the others change something (or spend our CPU) and must come from our page
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DEFAULT_PORTS = {"http": 80, "https": 443}


def split_host(value: str) -> tuple[str, int | None] | None:
    """A Host header's (name, port or None), lower case and without IPv6 brackets; None if malformed."""
    value = value.strip().lower()
    if value.startswith("["):
        name, bracket, rest = value[1:].partition("]")
        if not bracket:
            return None
    else:
        name, colon, port = value.partition(":")
        rest = colon + port
    if not name:
        return None
    if not rest:
        return name, None
    if not (rest.startswith(":") and rest[1:].isdigit() and int(rest[1:]) < 65536):
        return None
    return name, int(rest[1:])


def is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def host_allowed(
    host: str, bound: str, allowed: tuple[str, ...], local: tuple[str, int] | None, scheme: str = "http"
) -> bool:
    """Whether a request whose Host header is `host` reached the server as it is meant to be reached.

    bound: the address the server listens on; allowed: further names it answers to (any port);
    local: (address, port) the connection arrived at, as the ASGI scope's "server" says.
    """
    parsed = split_host(host)
    if parsed is None:
        return False
    name, port = parsed
    bound = bound.strip("[]").lower()
    if name in allowed:
        return True
    if bound in WILDCARD_ADDRESSES and not allowed:
        return True
    if local is not None and (port or DEFAULT_PORTS.get(scheme, 80)) != local[1]:
        return False
    # the connection's own address is never a rebinding: an attacker's page has a name of its own
    if name == bound or (local is not None and name == local[0].lower()):
        return True
    return name in LOOPBACK_NAMES and (is_loopback(bound) or bound in WILDCARD_ADDRESSES)


def same_origin(origin: str, host: str) -> bool:
    """Whether an Origin header names the site the request was sent to (its Host header). Ports are
    compared as written: browsers leave a scheme's default port out of both headers."""
    try:
        parts = urlsplit(origin.strip().lower())
        origin_key = (parts.hostname, parts.port)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and origin_key == split_host(host)


class RequestGuard:
    """ASGI middleware: 400 for a foreign Host, 403 for an unsafe request from a foreign Origin."""

    def __init__(self, app: ASGIApp, bound_host: str, allowed_hosts: tuple[str, ...]):
        self.app = app
        self.bound_host = bound_host
        self.allowed_hosts = allowed_hosts

    def refusal(self, scope: Scope) -> JSONResponse | None:
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        host = headers.get("host")
        server = scope.get("server")
        local = (str(server[0]), int(server[1])) if server and server[1] is not None else None
        # HTTP/1.0 clients may send no Host; browsers, which rebinding needs, always send one
        if host is not None and not host_allowed(
            host, self.bound_host, self.allowed_hosts, local, scope.get("scheme", "http")
        ):
            return JSONResponse({"detail": f"this server does not answer to the host name {host!r}"}, 400)
        origin = headers.get("origin")
        if scope["method"] not in SAFE_METHODS and origin is not None and not same_origin(origin, host or ""):
            return JSONResponse({"detail": f"cross-origin request refused (Origin: {origin})"}, 403)
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":  # the app has no websockets; lifespan events pass
            refusal = self.refusal(scope)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)
