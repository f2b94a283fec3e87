"""playbooks/benchmark.yml -e benchmark_scale=true in short mode on the local substrate: the catalog of a bucket of
10,000 objects in 100 directories (issue "Serve the bucket the way GCS itself would").

Asserted: what is correctness. The catalog is complete (every name, the main page included) and trusted; a
listing takes one call per 1,000 names, whatever the directories; names the bucket lacks are answered 404 (or
429, paced) with no error, by the preset with its catalog. Times, memory and throughput ratios are printed.
"""

from __future__ import annotations

import json
import math

import pytest
import yaml
from conftest import REPO, run_playbook

DEFAULTS = yaml.safe_load((REPO / "roles/benchmark/defaults/main.yml").read_text())
OBJECTS = DEFAULTS["benchmark_scale_objects"]["short"]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("scale")
    proc = run_playbook("playbooks/benchmark.yml", "-e", "benchmark_scale=true",
                        "-e", "benchmark_scale_results_dir=%s" % out, timeout=1200, check=False)
    assert (out / "scale.json").exists(), "no results written:\n" + proc.stdout[-4000:]
    print((out / "scale.md").read_text())
    assert proc.returncode == 0, proc.stdout[-4000:]
    return json.loads((out / "scale.json").read_text())


def test_the_catalog_is_complete_and_listed_one_call_per_thousand_names(results):
    catalog = results["catalog"]
    assert int(catalog["names"]) == OBJECTS  # the main page among them
    assert int(catalog["list_calls"]) == math.ceil(OBJECTS / 1000), catalog
    assert int(catalog["bytes"]) > 0 and float(catalog["pod_start_to_trusted_s"]) > 0, catalog


def test_unknown_names_are_answered_without_errors_by_the_catalog(results):
    floods = {(f["target"], f["kind"]): f for f in results["flood"]}
    assert {target for target, _kind in floods} == {"preset", "preset without catalog"}
    for (target, _kind), f in floods.items():
        assert not f["failed"], f
        codes = f["misses"]["status_codes"]
        assert f["misses"]["requests"] > 0 and "404" in codes, f
        if target == "preset":
            assert set(codes) <= {"404", "429"} and f["flooded"]["errors"] == 0, f
