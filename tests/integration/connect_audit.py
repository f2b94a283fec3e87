"""Parse `strace -f -e trace=connect` output and sort each connect by where it goes.

Pure functions, shared by the gcsfuse connect-audit test and its unit tests.
"""

from __future__ import annotations

import ipaddress
import re

# A connect that another thread interrupts in strace's output ends in " <unfinished ...>" instead of ")": it
# still names its address, and it is the one most likely to be missed (gcsfuse's token fetch runs in parallel).
_CONNECT = re.compile(r"connect\(\d+, \{sa_family=(?P<family>AF_\w+)(?P<rest>.*?)\}, \d+(?:\)| <unfinished \.\.\.>)")
_IPV4 = re.compile(r'sin_port=htons\((?P<port>\d+)\), sin_addr=inet_addr\("(?P<addr>[^"]+)"\)')
_IPV6 = re.compile(r'sin6_port=htons\((?P<port>\d+)\).*?inet_pton\(AF_INET6, "(?P<addr>[^"]+)"')


def connects(strace_output):
    """Yield (family, address, port) for every connect() call in strace output; address is None for
    families without one (AF_UNIX, AF_NETLINK...)."""
    for match in _CONNECT.finditer(strace_output):
        family, rest = match.group("family"), match.group("rest")
        inet = _IPV4.search(rest) if family == "AF_INET" else _IPV6.search(rest) if family == "AF_INET6" else None
        if family in ("AF_INET", "AF_INET6") and inet is None:
            raise ValueError("cannot read the address of: " + match.group(0))
        yield family, inet.group("addr") if inet else None, int(inet.group("port")) if inet else None


def is_loopback(address):
    ip = ipaddress.ip_address(address)
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


def non_loopback(strace_output):
    """The IP connects that leave loopback: each as 'address:port'."""
    return ["%s:%s" % (addr, port) for family, addr, port in connects(strace_output)
            if addr is not None and not is_loopback(addr)]
