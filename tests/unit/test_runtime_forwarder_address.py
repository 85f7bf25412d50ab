"""Where the runtime's forwarder listens, read from the envelope's ``api.url``: the loopback
port the executor names, and nothing else (an address it cannot serve is refused before the
handler runs, with the reason the run's log shows)."""

from __future__ import annotations

import pytest
from plugin_runtime.forwarder import ForwarderError, listen_address

REFUSED = "api.url must be http://127.0.0.1:<port>/... to use the gateway"


@pytest.mark.parametrize(
    ("url", "port"),
    [
        ("http://127.0.0.1:8701/v1/platform/p1", 8701),
        ("http://127.0.0.1:8701", 8701),
        ("http://localhost:65535/", 65535),
        ("http://LOCALHOST:1?x=1", 1),
        ("http://127.0.0.1:8701#part", 8701),
    ],
)
def test_the_loopback_port_of_the_api_url(url: str, port: int) -> None:
    assert listen_address(url) == ("127.0.0.1", port)


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1:8701/",  # not loopback
        "http://127.0.0.2:8701/",
        "http://user@127.0.0.1:8701/",
        "http://127.0.0.1/",  # no port
        "http://127.0.0.1:/",
        "http://127.0.0.1:0/",
        "http://127.0.0.1:65536/",
        "http://127.0.0.1:-1/",
        "http://127.0.0.1:\uff18\uff17\uff10\uff11/",  # fullwidth digits: isdigit() says yes
        "http://127.0.0.1:8701x/",
        "",
    ],
)
def test_any_other_address_is_refused_naming_the_form(url: str) -> None:
    with pytest.raises(ForwarderError) as refused:
        listen_address(url)
    assert str(refused.value) == REFUSED
