"""Unit tests import the collection as Ansible does: ansible_collections.gcsfront.gke (collections/ symlink)."""

from __future__ import annotations

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "collections"))
