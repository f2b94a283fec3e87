"""roles/benchmark/tasks/render_report.yml: a report rendered from its results.json alone (results.md here).

The figures are a small hand-made results.json in the shape report.yml writes; nothing is measured and nothing
reaches a cluster (the play runs on localhost only).
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess

REPO = pathlib.Path(__file__).resolve().parents[4]

PLAYBOOK = """\
- name: Render a benchmark report from its JSON.
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Render it.
      ansible.builtin.include_role:
        name: gcsfront.gke.benchmark
        tasks_from: render_report
      vars:
        benchmark_publish_dir: ""
        benchmark_report: {dir: "%s", json: results.json, template: results.md.j2, md: results.md, chart: chart.png,
                           page: benchmarks.md}
"""


def run(target, rps, high=13.0):
    return {"target": target, "object": "File1", "tool": "ab", "failed": False, "error": "", "requests": 100,
            "errors": 0, "requests_per_second": rps, "time_per_request_ms": 1000.0 / rps, "latency_ms": {"max": 1.0},
            "status_codes": {}, "duration_s": 1.0, "gcs_calls": None, "gcs_calls_by_kind": None,
            "gcs_calls_per_request": None}


def render(tmp_path, results):
    (tmp_path / "results.json").write_text(json.dumps(results))
    playbook = tmp_path / "render.yml"
    playbook.write_text(PLAYBOOK % tmp_path)
    proc = subprocess.run([str(REPO / ".venv/bin/ansible-playbook"), str(playbook)], cwd=REPO,
                          env=dict(os.environ, ANSIBLE_NOCOLOR="1"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, check=False, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:]
    return (tmp_path / "results.md").read_text()


def test_the_2016_comparison_shows_the_ratio_with_two_significant_digits(tmp_path):
    results = {"mode": "short", "date": "2026-12-05T06:00:00+00:00", "machine": {"cores": 2, "memory_mb": 4000, "cpu": "x"},
               "load": {"ab_requests": 100, "concurrency": 10, "wrk_duration": 2, "rate": 100, "rate_duration": 2},
               "objects": [{"label": "File1", "name": "file1.txt"}], "gcs_latency": None,
               "reference_2016_rps": {"File1": {"low": 5.4, "high": 13.0}},
               "runs": [run("2016 configuration", 6.84), run("preset", 40286.0), run("slow", 1.0)],
               "cold": [], "flood": []}
    markdown = render(tmp_path, results)
    line = next(x for x in markdown.splitlines() if x.startswith("Versus the best 2016 figure"))
    # 6.84 / 13.0 = 0.526..., 40286 / 13.0 = 3098.9..., 1.0 / 13.0 = 0.0769...
    assert "2016 configuration File1 0.53x" in line, line
    assert "preset File1 3100x" in line, line
    assert "slow File1 0.077x" in line, line
    # The table's rows are the measured runs, read from the JSON.
    assert "| 2016 configuration | 6.84 |" in markdown and "| preset | 40286.0 |" in markdown


def test_the_cold_table_takes_the_median_the_slowest_and_the_sum_of_gcs_calls_of_the_fetches(tmp_path):
    def fetch(ms, calls):
        return dict(run("preset", 1000.0 / ms), object="bench/cold-x", time_per_request_ms=ms, requests=1,
                    gcs_calls=sum(calls.values()), gcs_calls_by_kind=calls)

    results = {"mode": "short", "date": "2026-12-05T06:00:00+00:00", "machine": {"cores": 2, "memory_mb": 4000, "cpu": "x"},
               "load": {"ab_requests": 100, "concurrency": 10, "wrk_duration": 2, "rate": 100, "rate_duration": 2},
               "objects": [{"label": "File1", "name": "file1.txt"}], "gcs_latency": None,
               "reference_2016_rps": {"File1": {"low": 5.4, "high": 13.0}}, "runs": [run("preset", 100.0)],
               "cold": [{"target": "preset", "fetches": [fetch(90.0, {"metadata": 1, "read": 1, "list": 0}),
                                                         fetch(35.0, {"metadata": 1, "read": 1, "list": 0}),
                                                         fetch(40.0, {"metadata": 2, "read": 1, "list": 0})]}],
               "flood": []}
    markdown = render(tmp_path, results)
    assert "| preset | 3 | 40.0 | 90.0 | metadata 4, read 3 |" in markdown, markdown


def test_the_head_to_head_table_shows_each_pairs_median_range_and_rounds_and_lists_failed_runs(tmp_path):
    failed = dict(run("preset", 1.0), tool="wrk", round=2, failed=True, error="wrk: connection refused")
    ratios = [{"object": "File1", "tool": "wrk", "figure": "req/s", "target": "preset", "against": "local disk",
               "rounds": 2, "ratios": [0.93], "median": 0.93, "low": 0.93, "high": 0.93},
              {"object": "File1", "tool": "vegeta", "figure": "p50 ms", "target": "preset",
               "against": "preset without catalog", "rounds": 2, "ratios": [], "median": None, "low": None,
               "high": None}]
    results = {"mode": "short", "date": "2026-12-05T06:00:00+00:00", "machine": {"cores": 2, "memory_mb": 4000, "cpu": "x"},
               "load": {"ab_requests": 100, "concurrency": 10, "wrk_duration": 2, "rate": 100, "rate_duration": 2},
               "objects": [{"label": "File1", "name": "file1.txt"}], "gcs_latency": None,
               "reference_2016_rps": {"File1": {"low": 5.4, "high": 13.0}}, "runs": [run("preset", 100.0)],
               "cold": [], "flood": [],
               "head_to_head": {"rounds": 2, "duration_s": 2, "runs": [failed, dict(run("local disk", 9.0), round=2)],
                                "ratios": ratios}}
    markdown = render(tmp_path, results)
    assert "for 2 s each, on each object, on\npreset, local disk in turn" in markdown, markdown
    assert "| File1 | wrk req/s | preset | local disk | 0.93x | 0.93x | 0.93x | 1 of 2 |" in markdown, markdown
    # A pair with no usable round says so: no ratio is made up.
    assert "| File1 | vegeta p50 ms | preset | preset without catalog | - | - | - | 0 of 2 |" in markdown, markdown
    assert "- preset, File1, wrk, round 2: wrk: connection refused" in markdown, markdown


def test_a_run_without_head_to_head_has_no_such_section(tmp_path):
    results = {"mode": "short", "date": "2026-12-05T06:00:00+00:00", "machine": {"cores": 2, "memory_mb": 4000, "cpu": "x"},
               "load": {"ab_requests": 100, "concurrency": 10, "wrk_duration": 2, "rate": 100, "rate_duration": 2},
               "objects": [{"label": "File1", "name": "file1.txt"}], "gcs_latency": None,
               "reference_2016_rps": {"File1": {"low": 5.4, "high": 13.0}}, "runs": [run("preset", 100.0)],
               "cold": [], "flood": [], "head_to_head": None}
    assert "Head to head" not in render(tmp_path, results)


def test_a_run_of_errors_shows_its_errors_and_no_ratio_to_local_disk(tmp_path):
    def wrk(target, rps, errors):
        return dict(run(target, rps), tool="wrk", requests=1000, errors=errors, latency_ms={"p50": 0.2, "p99": 2.0})

    results = {"mode": "short", "date": "2026-12-05T06:00:00+00:00", "machine": {"cores": 2, "memory_mb": 4000, "cpu": "x"},
               "load": {"ab_requests": 100, "concurrency": 10, "wrk_duration": 2, "rate": 100, "rate_duration": 2},
               "objects": [{"label": "File1", "name": "file1.txt"}], "gcs_latency": None,
               "reference_2016_rps": {"File1": {"low": 5.4, "high": 13.0}},
               "runs": [wrk("2016 configuration", 3000.0, 1000), wrk("preset", 800.0, 0), wrk("local disk", 1000.0, 0)],
               "cold": [], "flood": []}
    markdown = render(tmp_path, results)
    assert "| 2016 configuration | File1 | 3000.0 | 0.2 | 2.0 | 1000 of 1000 |" in markdown, markdown
    assert "| 2016 configuration | - | - |" in markdown and "| preset | 0.8x | 1.0x |" in markdown, markdown
