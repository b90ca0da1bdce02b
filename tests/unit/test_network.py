"""Which proxy a client uses (argument or environment), and the checks on ``proxy``, ``ssl`` and ``trust_env``."""

from __future__ import annotations

import ssl

import pytest

from fullstory_async import Client, InvalidArgumentError
from fullstory_async._network import environment_proxy, network_options

KEY = "na1.N3tw0rkUnitKey/ORG"
API = "https://api.fullstory.com"
PASSWORD = "hunter2-proxy-pass"


def options(base_url: str = API, **kwargs: object):
    kwargs = {"proxy": None, "ssl": None, "trust_env": True, "allow_insecure_http": False, **kwargs}
    return network_options(base_url, **kwargs)  # type: ignore[arg-type]


def test_https_api_uses_https_proxy_not_http_proxy(monkeypatch):
    """An https API takes HTTPS_PROXY; HTTP_PROXY is for plain http APIs only."""
    monkeypatch.setenv("HTTP_PROXY", "http://plain:3128")
    assert environment_proxy(API) is None
    monkeypatch.setenv("HTTPS_PROXY", "http://secure:3128")
    proxy = environment_proxy(API)
    assert proxy is not None
    assert (proxy.url, proxy.source) == ("http://secure:3128", "HTTPS_PROXY")
    assert environment_proxy("http://127.0.0.1:8080").url == "http://plain:3128"


def test_all_proxy_is_the_fallback(monkeypatch):
    """ALL_PROXY applies when the scheme's own variable is unset."""
    monkeypatch.setenv("ALL_PROXY", "http://every:8080")
    assert environment_proxy(API).source == "ALL_PROXY"
    monkeypatch.setenv("HTTPS_PROXY", "http://secure:3128")
    assert environment_proxy(API).url == "http://secure:3128"


def test_lower_case_variables_win(monkeypatch):
    """``https_proxy`` wins over ``HTTPS_PROXY`` and ``no_proxy`` over ``NO_PROXY`` (as urllib and curl)."""
    monkeypatch.setenv("HTTPS_PROXY", "http://upper:1")
    monkeypatch.setenv("https_proxy", "http://lower:2")
    assert environment_proxy(API).url == "http://lower:2"
    monkeypatch.setenv("NO_PROXY", "nothing.example")
    monkeypatch.setenv("no_proxy", "fullstory.com")
    assert environment_proxy(API) is None


def test_http_proxy_is_ignored_inside_a_cgi_request(monkeypatch):
    """Upper-case HTTP_PROXY is ignored when REQUEST_METHOD is set (a client can set it: httpoxy)."""
    monkeypatch.setenv("REQUEST_METHOD", "GET")
    monkeypatch.setenv("HTTP_PROXY", "http://attacker:3128")
    assert environment_proxy("http://127.0.0.1:8080") is None


@pytest.mark.parametrize(
    ("no_proxy", "bypassed"),
    [
        ("fullstory.com", True),  # a domain covers its subdomains
        (".fullstory.com", True),
        ("api.fullstory.com", True),
        ("API.FullStory.com", True),
        ("  other.example ,  fullstory.com ", True),
        ("*", True),
        ("api.fullstory.com:443", True),  # the scheme's default port
        ("api.fullstory.com:8443", False),
        ("story.com", False),  # a suffix must end at a dot
        ("eu1.fullstory.com", False),
        ("10.0.0.0/8", False),
        ("", False),
        (",", False),
    ],
)
def test_no_proxy_forms(monkeypatch, no_proxy, bypassed):
    """NO_PROXY names match the host and its subdomains, case-insensitively; nothing else bypasses."""
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")
    monkeypatch.setenv("NO_PROXY", no_proxy)
    assert (environment_proxy(API) is None) is bypassed


@pytest.mark.parametrize(
    ("base_url", "no_proxy", "bypassed"),
    [
        ("http://127.0.0.1:8080", "127.0.0.1", True),
        ("http://127.0.0.1:8080", "127.0.0.1:8080", True),
        ("http://127.0.0.1:8080", "127.0.0.1:9090", False),
        ("http://127.0.0.1:8080", "127.0.0.0/8", True),
        ("http://127.0.0.1:8080", "127.0.1.0/24", False),
        ("http://[::1]:8080", "::1/128", True),
        ("http://[::1]:8080", "::1", True),
        ("http://[::1]:8080", "[::1]:8080", True),
        ("http://[::1]:8080", "[::1]:80", False),
        ("http://localhost:8080", "127.0.0.1", False),  # names are not resolved
        ("http://127.0.0.1:8080", "", False),  # loopback is not bypassed automatically
    ],
)
def test_no_proxy_addresses_and_ports(monkeypatch, base_url, no_proxy, bypassed):
    """IP hosts match addresses and CIDR ranges; ``host:port`` matches that port only."""
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:3128")
    monkeypatch.setenv("NO_PROXY", no_proxy)
    assert (environment_proxy(base_url) is None) is bypassed


def test_proxy_without_scheme_is_http(monkeypatch):
    """``HTTPS_PROXY=proxy:3128`` means ``http://proxy:3128`` (as curl)."""
    monkeypatch.setenv("HTTPS_PROXY", "proxy.corp:3128")
    assert environment_proxy(API).url == "http://proxy.corp:3128"


def test_credentials_become_a_header_and_leave_every_text(monkeypatch):
    """Credentials move from the URL to Proxy-Authorization (percent-decoded); the URL and repr hide them."""
    monkeypatch.setenv("HTTPS_PROXY", f"http://ops%40corp:{PASSWORD}@proxy:3128")
    proxy = environment_proxy(API)
    assert proxy.url == "http://proxy:3128"
    assert proxy.authorization == "Basic " + __import__("base64").b64encode(f"ops@corp:{PASSWORD}".encode()).decode()
    assert PASSWORD not in repr(proxy)
    client = Client(api_key=KEY)
    assert PASSWORD not in repr(client)


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ("socks5://user:hunter2-proxy-pass@proxy:1080", "ALL_PROXY"),
        ("https://user:hunter2-proxy-pass@proxy:443", "ALL_PROXY"),
        ("http://user:hunter2-proxy-pass@:3128", "ALL_PROXY"),
        ("http://user:hunter2-proxy-pass@proxy:99999", "ALL_PROXY"),
        ("user:hunter2-proxy-pass", "ALL_PROXY"),  # no scheme and no "@": the password parses as a port
    ],
)
def test_unsupported_proxy_is_refused_naming_the_variable(monkeypatch, value, field):
    """A proxy the SDK cannot use is an error naming its variable, never a silent direct connection."""
    monkeypatch.setenv(field, value)
    with pytest.raises(InvalidArgumentError, match="http:// proxy URL") as caught:
        Client(api_key=KEY)
    assert caught.value.field == field
    assert PASSWORD not in str(caught.value)
    assert PASSWORD not in repr(caught.value)


def test_explicit_proxy_is_checked_and_wins(monkeypatch):
    """``proxy=`` overrides the environment and is refused with ``field == "proxy"`` when unusable."""
    monkeypatch.setenv("HTTPS_PROXY", "socks5://broken:1080")
    assert options(proxy="http://mine:8080")[0].url == "http://mine:8080"
    with pytest.raises(InvalidArgumentError) as caught:
        options(proxy="ftp://mine:21")
    assert caught.value.field == "proxy"
    with pytest.raises(InvalidArgumentError, match="proxy: must be a str, got int"):
        options(proxy=3128)


def test_trust_env_false_and_a_passed_session_ignore_the_environment(monkeypatch):
    """``trust_env=False`` reads no variable (a broken one is no error); nor does a client given a session."""
    monkeypatch.setenv("HTTPS_PROXY", "socks5://broken:1080")
    assert options(trust_env=False) == (None, None)
    Client(api_key=KEY, trust_env=False)
    with pytest.raises(InvalidArgumentError, match="trust_env: must be a bool, got str"):
        options(trust_env="yes")


async def test_client_given_a_session_does_not_read_the_environment(monkeypatch):
    """With ``session=`` the session's own settings decide; the client reads no proxy variable."""
    import aiohttp

    monkeypatch.setenv("HTTPS_PROXY", "socks5://broken:1080")
    async with aiohttp.ClientSession() as session:
        Client(api_key=KEY, session=session)


def test_plain_http_api_refuses_a_proxy_off_this_machine(monkeypatch):
    """A plain-http API through a non-loopback proxy would send the key in clear: refused unless opted in."""
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.corp:3128")
    with pytest.raises(InvalidArgumentError, match="in clear") as caught:
        Client(api_key=KEY, base_url="http://127.0.0.1:8080")
    assert caught.value.field == "HTTP_PROXY"
    assert options("http://127.0.0.1:8080", allow_insecure_http=True)[0].url == "http://proxy.corp:3128"
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:3128")  # a proxy on this machine is fine
    assert options("http://127.0.0.1:8080")[0].url == "http://127.0.0.1:3128"


def test_ssl_must_be_a_context_for_an_https_api():
    """``ssl=`` takes an ``ssl.SSLContext`` (no ``False`` switch) and only for an https base URL."""
    context = ssl.create_default_context()
    assert options(ssl=context)[1] is context
    for wrong in (False, True, "/etc/ssl/ca.pem"):
        with pytest.raises(InvalidArgumentError, match="ssl: must be a SSLContext"):
            Client(api_key=KEY, ssl=wrong)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="https base URLs only"):
        Client(api_key=KEY, base_url="http://127.0.0.1:8080", ssl=context)
