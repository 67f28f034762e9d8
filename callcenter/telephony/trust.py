"""Who may call a worker: trusted source addresses, per-source call caps, asserted identity.

A worker sits behind the SIP edge (Kamailio) and trunks. Anything else reaching its SIP port
directly bypasses the edge's authentication and flood control, so INVITEs are accepted only
from the addresses in `sip.trusted`, and only those sources may assert the caller's number
with P-Asserted-Identity (RFC 3325 trusts PAI only inside a trust domain). No pjsua2 import:
config validation and unit tests use this module without the library.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class TrustedSource:
    """One `sip.trusted` entry."""

    network: Network
    max_calls: int | None = None   # concurrent calls from one address of it (None: sip.max_calls_per_source)
    pai: bool = True               # believe its P-Asserted-Identity


# Secure by default: only this host (a demo edge or sipp on loopback) may call.
DEFAULT_TRUSTED = (TrustedSource(ipaddress.ip_network("127.0.0.0/8")),
                   TrustedSource(ipaddress.ip_network("::1/128")))


def parse_network(text: str) -> Network:
    """'10.0.0.5', '10.0.0.0/24', '::1' -> a network; ValueError with a readable message."""
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address or CIDR network") from None


def source_ip(src: str) -> Address | None:
    """The address of pjsua2's `rdata.srcAddress` ('192.0.2.1:5060', '[2001:db8::1]:5060')."""
    host = src.strip()
    if host.startswith("["):
        host = host[1:host.find("]")] if "]" in host else host[1:]
    elif host.count(":") == 1:
        host = host.rsplit(":", 1)[0]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped   # a dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d
    return ip


class SourcePolicy:
    """Matches a request's source address against `sip.trusted` and counts live calls per address."""

    def __init__(self, trusted: tuple[TrustedSource, ...], max_calls_per_source: int) -> None:
        # Most specific entry first, so a /32 override inside a trusted /24 wins.
        self.trusted = sorted(trusted, key=lambda t: -t.network.prefixlen)
        self.max_calls_per_source = max_calls_per_source
        self.live: dict[str, int] = {}

    def match(self, ip: Address | None) -> TrustedSource | None:
        if ip is None:
            return None
        for entry in self.trusted:
            if ip.version == entry.network.version and ip in entry.network:
                return entry
        return None

    def cap(self, entry: TrustedSource) -> int:
        return entry.max_calls if entry.max_calls is not None else self.max_calls_per_source

    def admit(self, ip: Address, entry: TrustedSource) -> bool:
        """Count one more live call from ip unless its cap is reached."""
        key = str(ip)
        n = self.live.get(key, 0)
        if n >= self.cap(entry):
            return False
        self.live[key] = n + 1
        return True

    def release(self, key: str) -> None:
        n = self.live.get(key, 0) - 1
        if n > 0:
            self.live[key] = n
        else:
            self.live.pop(key, None)


_PAI = re.compile(r"^P-Asserted-Identity[ \t]*:[ \t]*(.*)$", re.IGNORECASE | re.MULTILINE)
_PAI_USER = re.compile(r"<?\s*(?:sips?:([^@;>\s]+)@|tel:([^;>\s]+))", re.IGNORECASE)


def asserted_user(message: str) -> str:
    """The user (number) of the first P-Asserted-Identity in a raw SIP request, '' if none.

    Only the header section is read; a sip: URI gives its user part, a tel: URI its number."""
    head = message.split("\r\n\r\n", 1)[0].split("\n\n", 1)[0]
    for value in _PAI.findall(head):
        m = _PAI_USER.search(value)
        if m:
            return (m.group(1) or m.group(2) or "").strip()
    return ""


# A URI we send a REFER or an INVITE to: one URI, no display name, no angle brackets, no embedded
# headers ('?Replaces=...' in a Refer-To makes the far end send them), no whitespace or control bytes.
_SAFE_URI = re.compile(r'^(?:sips?|tel):[^\s<>"?\x00-\x1f\x7f]+$', re.IGNORECASE)


def safe_uri(uri: str) -> bool:
    """True if uri is a plain sip:/sips:/tel: URI that is safe to put in a request line or Refer-To."""
    return bool(_SAFE_URI.match(uri))


def safe_header_value(value: str) -> bool:
    """No CR, LF or NUL: a header value we add must not start another header."""
    return not any(c in value for c in "\r\n\x00")

