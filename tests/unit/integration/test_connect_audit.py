"""The strace connect parser used by the gcsfuse connect audit."""

from __future__ import annotations

import sys
import pathlib

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[3] / "tests/integration"))
from connect_audit import connects, is_loopback, non_loopback  # noqa: E402

TRACE = """\
812 connect(7, {sa_family=AF_INET, sin_port=htons(4443), sin_addr=inet_addr("127.0.0.1")}, 16) = 0
812 connect(8, {sa_family=AF_UNIX, sun_path="/var/run/nscd/socket"}, 110) = -1 ENOENT (No such file)
813 connect(9, {sa_family=AF_INET6, sin6_port=htons(80), sin6_flowinfo=htonl(0), \
inet_pton(AF_INET6, "::1", &sin6_addr), sin6_scope_id=0}, 28) = -1 ECONNREFUSED (Connection refused)
813 connect(10, {sa_family=AF_UNSPEC, sa_data="\\0\\0\\0\\0"}, 16) = 0
"""
LEAK = '814 connect(11, {sa_family=AF_INET, sin_port=htons(80), sin_addr=inet_addr("169.254.169.254")}, 16) ' \
       '= -1 ENETUNREACH (Network is unreachable)\n'


def test_connects_reads_every_family():
    assert list(connects(TRACE)) == [("AF_INET", "127.0.0.1", 4443), ("AF_UNIX", None, None),
                                     ("AF_INET6", "::1", 80), ("AF_UNSPEC", None, None)]


def test_a_connect_interrupted_by_another_thread_still_counts():
    interrupted = ('815 connect(12, {sa_family=AF_INET, sin_port=htons(80), sin_addr=inet_addr("10.96.0.254")}, 16 '
                   '<unfinished ...>\n816 connect(13, {sa_family=AF_INET, sin_port=htons(53), '
                   'sin_addr=inet_addr("10.96.0.10")}, 16) = 0\n815 <... connect resumed>) = -1 EINPROGRESS\n')
    assert list(connects(interrupted)) == [("AF_INET", "10.96.0.254", 80), ("AF_INET", "10.96.0.10", 53)]


def test_loopback_only_trace_is_clean():
    assert non_loopback(TRACE) == []


def test_metadata_dial_is_reported():
    assert non_loopback(TRACE + LEAK) == ["169.254.169.254:80"]


@pytest.mark.parametrize("address, loopback", [
    ("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("::ffff:127.0.0.1", True),
    ("10.254.254.17", False), ("::ffff:10.0.0.1", False), ("fe80::1", False),
])
def test_is_loopback(address, loopback):
    assert is_loopback(address) is loopback


def test_unreadable_inet_address_is_an_error():
    with pytest.raises(ValueError):
        list(connects('connect(3, {sa_family=AF_INET, sin_port=htons(1)}, 16) = 0'))
