"""module_utils._gcs: which object the smoke fetch compares when none is given (pick_smoke_object), and the missing
library named."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

from ansible_collections.gcsfront.gke.plugins.module_utils._gcs import SMOKE_PICK_MAX_BYTES, pick_smoke_object

COLLECTIONS = pathlib.Path(__file__).resolve().parents[4] / "collections"


def _items(**sizes):
    return [{"name": name.replace("__", "/").replace("_", "."), "size": str(size)} for name, size in sizes.items()]


def test_index_html_wins_whatever_its_size():
    assert pick_smoke_object(_items(a_txt=1, index_html=SMOKE_PICK_MAX_BYTES * 5)) == "index.html"


def test_the_smallest_non_empty_object_otherwise():
    assert pick_smoke_object(_items(big_png=300000, empty_txt=0, small_txt=10, also_txt=10)) == "also.txt"


def test_an_empty_object_only_when_there_is_no_other():
    assert pick_smoke_object(_items(empty_txt=0, huge_bin=SMOKE_PICK_MAX_BYTES + 1)) == "empty.txt"


def test_folder_placeholders_and_large_objects_are_never_picked():
    assert pick_smoke_object(_items(docs__=0, huge_bin=SMOKE_PICK_MAX_BYTES + 1)) is None
    assert pick_smoke_object([]) is None


def test_index_html_in_a_directory_is_not_the_bucket_index():
    assert pick_smoke_object(_items(docs__index_html=5, a_txt=9)) == "docs/index.html"


@pytest.mark.parametrize("blocked, named", [("requests", "requests"), ("google.auth", "google-auth")])
def test_a_missing_library_is_named(blocked, named):
    # A fresh interpreter where the library cannot be imported: module_utils._gcs names it for missing_required_lib.
    code = ("import sys; sys.modules[%r] = None; sys.path.insert(0, %r)\n"
            "from ansible_collections.gcsfront.gke.plugins.module_utils import _gcs\n"
            "print(_gcs.MISSING_LIBRARY, _gcs.HAS_GOOGLE_AUTH)" % (blocked, str(COLLECTIONS)))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == [named, "False"]
