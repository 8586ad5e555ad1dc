"""Host checks: the studio answers only to the host names it serves (no DNS rebinding).

A web page on ``evil.example`` can re-point its own name at 127.0.0.1 and then call the studio as if it were its
own site: the browser sends ``Host: evil.example:PORT`` and lets the page read the answers. So every request (every
route: Gradio's, its files, the owner API; HTTP and WebSocket; CORS preflights too) whose Host is not one the studio
serves gets 403 before anything else sees it, and so does a browser request whose Origin is another site's
(Gradio's CORS middleware lets any origin read the answers once the Host is not a loopback name, e.g. on a LAN):

- always ``127.0.0.1``, ``localhost``, ``[::1]`` and the ``--host`` given;
- bound to every interface (``--host 0.0.0.0`` / ``::``): also this machine's names and any IP address (a page
  cannot rebind an address typed as numbers: rebinding needs a name the attacker owns);
- a Space's own domain (``SPACE_HOST``), ``*.gradio.live`` with ``--share``;
- the names in ``STUDIO_ALLOWED_HOSTS`` (comma-separated; ``*.example.org`` allows its subdomains), e.g. a reverse
  proxy's public name.

    options = launch_options(studio, host=args.host, share=args.share)   # carries ``lifespan(hosts)``
    demo.launch(..., **options)

Gradio builds its own FastAPI app inside ``launch``; ``launch(app_kwargs={"lifespan": ...})`` hands us that app at
start-up, before the server answers anyone, and ``lifespan`` puts ``HostCheck`` outside the whole middleware stack
(outside Gradio's CORS middleware, which would otherwise answer a foreign preflight itself).
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import socket
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse

log = logging.getLogger(__name__)
LOOPBACK = ("127.0.0.1", "localhost", "::1")
WILDCARDS = ("0.0.0.0", "::", "")
ENV = "STUDIO_ALLOWED_HOSTS"
REFUSED = ("403: this studio does not answer to the host name {host!r} or to pages from another site. Open it as "
           "http://127.0.0.1:PORT (or a name listed in STUDIO_ALLOWED_HOSTS).")


def _name(host: str) -> str:
    """A Host header's name, lower case, without the port (``[::1]:7860`` -> ``::1``)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


def _machine_names() -> set[str]:
    names = {socket.gethostname(), socket.getfqdn()}
    return {n.lower() for n in names if n}


def allowed_hosts(bind: str | None = "127.0.0.1", share: bool = False, env: dict | None = None) -> "HostRule":
    """The host names a studio bound to ``bind`` serves (see the module's docstring)."""
    env = os.environ if env is None else env
    names = set(LOOPBACK)
    bind = (bind or "").strip().lower()
    wildcard = bind in WILDCARDS
    if not wildcard:
        names.add(_name(bind) if bind.startswith("[") else bind)
    else:
        names |= _machine_names()
    if env.get("SPACE_HOST"):
        names.add(_name(env["SPACE_HOST"]))
    patterns = [_name(h) for h in (env.get(ENV) or "").split(",") if h.strip()]
    if share:
        patterns.append("*.gradio.live")
    names |= {p for p in patterns if not p.startswith("*.")}
    suffixes = tuple(p[1:] for p in patterns if p.startswith("*."))
    return HostRule(frozenset(names), suffixes, any_ip=wildcard)


class HostRule:
    def __init__(self, names: frozenset[str], suffixes: tuple[str, ...] = (), any_ip: bool = False):
        self.names, self.suffixes, self.any_ip = names, suffixes, any_ip

    def allows(self, host: str | None) -> bool:
        if not host:
            return False
        name = _name(host)
        return (name in self.names or (bool(self.suffixes) and name.endswith(self.suffixes))
                or (self.any_ip and _is_ip(name)))

    def allows_origin(self, origin: str, host: str | None) -> bool:
        """A browser's Origin header: the page's own origin (same host and port), or a name this studio serves
        (never "any IP": a page on the attacker's own address must not read the answers)."""
        try:
            parts = urlsplit(origin.strip())
            name = (parts.hostname or "").lower()
        except ValueError:
            return False
        if parts.netloc and host and parts.netloc.lower() == host.strip().lower():
            return True
        return bool(name) and (name in self.names or (bool(self.suffixes) and name.endswith(self.suffixes)))

    def __repr__(self) -> str:
        return f"HostRule({sorted(self.names)}, {self.suffixes}, any_ip={self.any_ip})"


class HostCheck:
    """ASGI middleware: 403 (HTTP) or a refused handshake (WebSocket) for a Host the rule does not allow."""

    def __init__(self, app, rule: HostRule):
        self.app, self.rule = app, rule
        self._noted: set = set()

    def _note(self, host, origin) -> None:
        """One log line per refused (host, origin): the studio's owner can see who knocked, and list a name."""
        key = (str(host)[:100], str(origin)[:100])
        if key not in self._noted and len(self._noted) < 100:
            self._noted.add(key)
            log.warning("refused a request for host %r from origin %r (not a host this studio serves; see "
                        "STUDIO_ALLOWED_HOSTS)", *key)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] in ("http", "websocket"):
            headers = Headers(scope=scope)
            host, origin = headers.get("host"), headers.get("origin")
            if not self.rule.allows(host) or (origin is not None and not self.rule.allows_origin(origin, host)):
                self._note(host, origin)
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                    return
                await PlainTextResponse(REFUSED.format(host=(host or "")[:100]), status_code=403)(scope, receive,
                                                                                                  send)
                return
        await self.app(scope, receive, send)


def lifespan(rule: HostRule):
    """A FastAPI ``lifespan`` that wraps the app's whole middleware stack in ``HostCheck`` at start-up (before the
    server takes requests; Starlette built the stack for this very lifespan call)."""

    @contextlib.asynccontextmanager
    async def _wrap(app):
        stack = app.middleware_stack if app.middleware_stack is not None else app.build_middleware_stack()
        if not isinstance(stack, HostCheck):  # a second start of the same app (another port tried)
            app.middleware_stack = HostCheck(stack, rule)
        yield

    return _wrap
