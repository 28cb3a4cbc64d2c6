"""The server's safe defaults: localhost only, an upload cap, XSRF on, no usage statistics."""
from __future__ import annotations

import re
import socket
import tomllib
import urllib.request

from tests.conftest import ROOT


def test_config_file_is_safe_by_default():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    assert config["server"]["address"] in ("localhost", "127.0.0.1")
    assert 0 < config["server"]["maxUploadSize"] <= 1024
    assert config["server"]["enableXsrfProtection"] is True
    assert config["browser"]["gatherUsageStats"] is False


def test_no_raw_html_in_the_interface():
    """`unsafe_allow_html` would let a folder or file name inject markup into the page."""
    pages = sorted((ROOT / "views").glob("*.py"))
    assert len(pages) >= 5, "no page scripts found: the check would check nothing"
    sources = [ROOT / "app.py", ROOT / "ui.py", *pages]
    offenders = [p.name for p in sources if re.search(r"unsafe_allow_html\s*=\s*True", p.read_text("utf-8"))]
    assert not offenders


def non_loopback_address() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("192.0.2.1", 9))  # no packet is sent; this only picks the outward interface
            address = sock.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def test_running_server_listens_on_localhost_only(server):
    with urllib.request.urlopen(f"{server.url}/_stcore/health", timeout=5) as resp:
        assert resp.status == 200
    outward = non_loopback_address()
    if outward:
        with socket.socket() as sock:
            sock.settimeout(2)
            assert sock.connect_ex((outward, server.port)) != 0, f"the app answers on {outward}"
