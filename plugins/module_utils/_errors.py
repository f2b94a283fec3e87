# Copyright (c) gcsfront contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module util is PRIVATE to the collection. It can have breaking changes at any time.
# Do not use it from other collections or roles.
"""One-line error text: modules fail with a single line a person reads, never a dump."""

from __future__ import annotations


def first_line(error, limit=200):
    """The first line of str(error), cut to `limit` characters."""
    return str(error).split("\n", maxsplit=1)[0][:limit]
