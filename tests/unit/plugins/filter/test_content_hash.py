"""plugins/filter/content_hash.py: the key changes with every build input and only with them."""

from __future__ import annotations

import hashlib

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.gcsfront.gke.plugins.filter.content_hash import FilterModule, content_hash


@pytest.fixture
def context(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "main.go").write_text("package main\n")
    (tmp_path / "src" / "go.mod").write_text("module x\n")
    return tmp_path


def test_the_key_is_the_sha256_of_names_and_bytes_in_name_order(context):
    expected = hashlib.sha256()
    for name in ["Dockerfile", "src/go.mod", "src/main.go"]:
        expected.update(name.encode() + b"\0" + (context / name).read_bytes() + b"\0")
    expected.update(b"\1" + b"1.27.2" + b"\0")
    assert content_hash(context, extra=["1.27.2"], length=64) == expected.hexdigest()
    assert content_hash(context) == content_hash(context, length=64)[:12]


def test_the_same_content_elsewhere_gives_the_same_key(context, tmp_path_factory):
    other = tmp_path_factory.mktemp("other")
    for path in context.rglob("*"):
        target = other / path.relative_to(context)
        target.mkdir() if path.is_dir() else target.write_bytes(path.read_bytes())
    assert content_hash(other) == content_hash(context)


@pytest.mark.parametrize("change", ["edit", "add", "remove", "rename", "extra"])
def test_every_build_input_changes_the_key(context, change):
    before = content_hash(context, extra=["a"])
    extra = ["a"]
    if change == "edit":
        (context / "src" / "main.go").write_text("package main // changed\n")
    elif change == "add":
        (context / "src" / "util.go").write_text("package main\n")
    elif change == "remove":
        (context / "src" / "go.mod").unlink()
    elif change == "rename":
        (context / "src" / "main.go").rename(context / "src" / "app.go")
    else:
        extra = ["b"]
    assert content_hash(context, extra=extra) != before


def test_patterns_select_the_files(context):
    only_go = content_hash(context, patterns=["src/*.go", "src/go.mod"])
    (context / "Dockerfile").write_text("FROM debian\n")
    assert content_hash(context, patterns=["src/*.go", "src/go.mod"]) == only_go
    (context / "src" / "main.go").write_text("package main // changed\n")
    assert content_hash(context, patterns="src/*.go") != only_go


def test_binary_files_are_hashed_as_bytes(context):
    (context / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
    before = content_hash(context)
    (context / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\xfe")
    assert content_hash(context) != before


@pytest.mark.parametrize("patterns,needle", [(["*.none"], "no file of"), (["**/*"], "is not a directory")])
def test_nothing_to_hash_fails(tmp_path, patterns, needle):
    directory = tmp_path if needle == "no file of" else tmp_path / "missing"
    with pytest.raises(AnsibleFilterError, match=needle):
        content_hash(directory, patterns=patterns)


def test_the_filter_is_registered():
    assert FilterModule().filters() == {"content_hash": content_hash}
