"""Network options of the client's own session: the proxy (explicit or from the environment) and TLS.

Proxies from the environment follow curl and httpx:

* ``HTTPS_PROXY`` for an ``https`` API (``HTTP_PROXY`` for a plain ``http`` one), else
  ``ALL_PROXY``; lower-case names win over upper-case ones, and upper-case
  ``HTTP_PROXY`` is ignored inside a CGI request (httpoxy), as ``urllib`` does.
* ``NO_PROXY`` is the only bypass: comma-separated host names (each also matching its
  subdomains; a leading dot is optional), ``host:port``, IP addresses, CIDR ranges, or
  ``*``. Nothing else is bypassed automatically, not even ``localhost``.
* A proxy URL without a scheme is ``http://``; only ``http://`` proxies are supported.
  Credentials in it (``http://user:pass@proxy:3128``) go to the proxy in a
  ``Proxy-Authorization`` header and never appear in a log line, repr or message.

An ``https`` API is reached through a ``CONNECT`` tunnel, so the proxy sees the host name
and encrypted bytes only, never the API key.
"""

from __future__ import annotations

import base64
import logging
import ssl as _ssl
from urllib.parse import unquote, urlsplit

import attrs

from fullstory_async._auth import _is_loopback as is_loopback
from fullstory_async._exceptions import InvalidArgumentError
from fullstory_async._validation import instance

logger = logging.getLogger("fullstory_async")


@attrs.frozen
class Proxy:
    """The proxy a client's requests go through."""

    url: str
    """The proxy's URL, without credentials."""

    authorization: str | None = attrs.field(default=None, repr=False)
    """The ``Proxy-Authorization`` header (``Basic``, from the URL's credentials), or ``None``."""

    source: str = "proxy"
    """Where it came from: ``"proxy"`` (the argument) or an environment variable's name."""


def _parse_proxy(value: str, field: str) -> Proxy:
    text = value.strip()
    if "://" not in text:
        text = "http://" + text
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        parts, port = None, None
    if parts is None or parts.scheme.lower() != "http" or not parts.hostname:
        # The message never shows the value: it may hold credentials.
        if parts is None:
            problem = "is not a valid URL (a bad port or host)"
        elif parts.scheme.lower() != "http":
            scheme = parts.scheme if parts.scheme.isalnum() and len(parts.scheme) <= 10 else "another"
            problem = f"uses the {scheme}:// scheme"
        else:
            problem = "has no host"
        raise InvalidArgumentError(field, f"{problem}; it must be an http:// proxy URL such as http://proxy:3128")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    url = f"http://{host}" + (f":{port}" if port is not None else "")
    authorization = None
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        authorization = "Basic " + base64.b64encode(pair.encode()).decode()
    return Proxy(url, authorization, field)


def _bypassed(host: str, port: int, no_proxy: str) -> bool:
    """Whether ``NO_PROXY`` covers ``host`` on ``port`` (see the module docstring for the forms)."""
    host = host.lower()
    try:
        import ipaddress  # on first use: keeps `import fullstory_async` light

        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for raw in no_proxy.split(","):
        entry = raw.strip().lower()
        if entry == "*":
            return True
        if entry.startswith("["):  # [IPv6] or [IPv6]:port
            name, _, rest = entry[1:].partition("]")
            entry_port = rest[1:] if rest.startswith(":") else ""
        elif entry.count(":") == 1:  # host:port (a bare IPv6 address has more colons)
            name, _, entry_port = entry.partition(":")
        else:
            name, entry_port = entry, ""
        name = name.lstrip(".")
        if not name or (entry_port and entry_port != str(port)):
            continue
        if address is not None:
            try:
                if address in ipaddress.ip_network(name, strict=False):
                    return True
                continue
            except ValueError:
                pass
        if host == name or host.endswith("." + name):
            return True
    return False


def environment_proxy(base_url: str) -> Proxy | None:
    """Return the proxy the environment sets for ``base_url``, or ``None`` (none set, or ``NO_PROXY`` covers it)."""
    parts = urlsplit(base_url)
    import urllib.request  # on first use: keeps `import fullstory_async` light

    env = urllib.request.getproxies_environment()
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if parts.hostname is None or _bypassed(parts.hostname, port, env.get("no", "")):
        return None
    for scheme in (parts.scheme, "all"):
        value = env.get(scheme, "").strip()
        if value:
            return _parse_proxy(value, f"{scheme.upper()}_PROXY")
    return None


def network_options(
    base_url: str,
    *,
    proxy: str | None,
    ssl: _ssl.SSLContext | None,
    trust_env: bool,
    allow_insecure_http: bool,
) -> tuple[Proxy | None, _ssl.SSLContext | None]:
    """Check the ``proxy``, ``ssl`` and ``trust_env`` arguments of `Client`; return the proxy and TLS context to use."""
    instance("trust_env", trust_env, bool)
    scheme = urlsplit(base_url).scheme
    if ssl is not None:
        instance("ssl", ssl, _ssl.SSLContext)
        if scheme != "https":
            raise InvalidArgumentError("ssl", f"applies to https base URLs only, and base_url is {base_url!r}")
    if proxy is not None:
        instance("proxy", proxy, str)
    chosen = _parse_proxy(proxy, "proxy") if proxy is not None else environment_proxy(base_url) if trust_env else None
    if chosen is not None:
        host = urlsplit(chosen.url).hostname or ""
        if scheme == "http" and not allow_insecure_http and not is_loopback(host):
            raise InvalidArgumentError(
                chosen.source,
                f"the proxy {chosen.url} would carry the API key in clear to {base_url}: add the host to "
                "NO_PROXY, pass trust_env=False, or use an https base URL",
            )
        logger.debug("requests to %s go through the proxy %s (from %s)", base_url, chosen.url, chosen.source)
    return chosen, ssl
