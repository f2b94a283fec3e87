# Copyright (c) gcsfront contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The content_hash filter: a short key for a set of build inputs (documented in content_hash.yml)."""

from __future__ import annotations

import hashlib
import os
import pathlib

from ansible.errors import AnsibleFilterError


def _files(directory, patterns):
    """The files under directory that match any pattern, as (name relative to directory, path), sorted by name."""
    root = pathlib.Path(os.path.expanduser(str(directory)))
    if not root.is_dir():
        raise AnsibleFilterError("content_hash: %s is not a directory" % root)
    found = {}
    for pattern in patterns:
        for path in root.glob(pattern):
            if path.is_file():
                found[path.relative_to(root).as_posix()] = path
    return sorted(found.items())


def content_hash(directory, patterns=("**/*",), extra=(), length=12):
    """SHA-256 over each matching file's relative name and bytes, then the extra strings; the first length hex digits.

    Names are relative, so two checkouts of the same content give the same key; a renamed file changes it.
    """
    if isinstance(patterns, str):
        patterns = [patterns]
    digest = hashlib.sha256()
    files = _files(directory, patterns)
    if not files:
        raise AnsibleFilterError("content_hash: no file of %s matches %s" % (directory, ", ".join(patterns)))
    for name, path in files:
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    for value in extra:
        digest.update(b"\1" + str(value).encode() + b"\0")
    return digest.hexdigest()[: int(length)]


class FilterModule:
    def filters(self):
        return {"content_hash": content_hash}
