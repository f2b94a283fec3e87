"""module_utils._load: command lines, unit conversions and parsers of ab 2.3, wrk 4.1.0 and vegeta v12.13.0 output.

The fixtures are real outputs of the Debian tools (apache2-utils ab 2.3, wrk 4.1.0) and of vegeta v12.13.0, run
against a Python http.server on 127.0.0.1 that answered 200 with a 10-byte body, 404, bodies of varying length
(/mixed), slowly (/slow, 1.2 s) or by closing the connection (/reset). Only stdout is kept, as the module reads it.
"""

from __future__ import annotations

import pytest

from ansible_collections.gcsfront.gke.plugins.module_utils._load import (
    PROXY_VARIABLES, LoadOutputError, ab_argv, bounds_problem, cpus_problem, failure_line, finished_record,
    gcs_calls_by_kind, guard_seconds, guarded,
    normalize_url, parse_ab, parse_vegeta_report, parse_wrk, url_problem, vegeta_attack_argv, vegeta_distinct_targets,
    vegeta_report_argv,
    vegeta_target, wrk_argv, wrk_duration_to_ms, wrk_size_to_bytes)

AB_OK = """\
This is ApacheBench, Version 2.3 <$Revision$>
Copyright 1996 Adam Twiss, Zeus Technology Ltd, http://www.zeustech.net/
Licensed to The Apache Software Foundation, http://www.apache.org/

Benchmarking 127.0.0.1 (be patient)


Server Software:        BaseHTTP/0.6
Server Hostname:        127.0.0.1
Server Port:            18431

Document Path:          /
Document Length:        10 bytes

Concurrency Level:      5
Time taken for tests:   0.132 seconds
Complete requests:      200
Failed requests:        0
Total transferred:      24400 bytes
HTML transferred:       2000 bytes
Requests per second:    1511.98 [#/sec] (mean)
Time per request:       3.307 [ms] (mean)
Time per request:       0.661 [ms] (mean, across all concurrent requests)
Transfer rate:          180.14 [Kbytes/sec] received

Connection Times (ms)
              min  mean[+/-sd] median   max
Connect:        0    0   0.0      0       0
Processing:     1    3   2.2      2      12
Waiting:        1    3   2.2      2      12
Total:          1    3   2.2      2      12

Percentage of the requests served within a certain time (ms)
  50%      2
  66%      3
  75%      4
  80%      4
  90%      6
  95%      8
  98%     11
  99%     11
 100%     12 (longest request)
"""

AB_FAILED_AND_NON_2XX = """\
This is ApacheBench, Version 2.3 <$Revision$>
Copyright 1996 Adam Twiss, Zeus Technology Ltd, http://www.zeustech.net/
Licensed to The Apache Software Foundation, http://www.apache.org/

Benchmarking 127.0.0.1 (be patient)


Server Software:        BaseHTTP/0.6
Server Hostname:        127.0.0.1
Server Port:            18431

Document Path:          /mixed
Document Length:        30 bytes

Concurrency Level:      5
Time taken for tests:   0.076 seconds
Complete requests:      200
Failed requests:        150
   (Connect: 0, Receive: 0, Length: 150, Exceptions: 0)
Non-2xx responses:      50
Total transferred:      26240 bytes
HTML transferred:       3490 bytes
Requests per second:    2640.09 [#/sec] (mean)
Time per request:       1.894 [ms] (mean)
Time per request:       0.379 [ms] (mean, across all concurrent requests)
Transfer rate:          338.26 [Kbytes/sec] received

Connection Times (ms)
              min  mean[+/-sd] median   max
Connect:        0    0   0.0      0       0
Processing:     1    2   0.4      2       4
Waiting:        0    2   0.3      2       2
Total:          1    2   0.4      2       4

Percentage of the requests served within a certain time (ms)
  50%      2
  66%      2
  75%      2
  80%      2
  90%      2
  95%      3
  98%      3
  99%      3
 100%      4 (longest request)
"""

AB_404 = """\
This is ApacheBench, Version 2.3 <$Revision$>
Copyright 1996 Adam Twiss, Zeus Technology Ltd, http://www.zeustech.net/
Licensed to The Apache Software Foundation, http://www.apache.org/

Benchmarking 127.0.0.1 (be patient).....done


Server Software:        BaseHTTP/0.6
Server Hostname:        127.0.0.1
Server Port:            18431

Document Path:          /missing
Document Length:        10 bytes

Concurrency Level:      5
Time taken for tests:   0.037 seconds
Complete requests:      100
Failed requests:        0
Non-2xx responses:      100
Total transferred:      12900 bytes
HTML transferred:       1000 bytes
Requests per second:    2704.38 [#/sec] (mean)
Time per request:       1.849 [ms] (mean)
Time per request:       0.370 [ms] (mean, across all concurrent requests)
Transfer rate:          340.69 [Kbytes/sec] received

Connection Times (ms)
              min  mean[+/-sd] median   max
Connect:        0    0   0.0      0       0
Processing:     1    2   0.4      2       3
Waiting:        0    2   0.3      2       2
Total:          1    2   0.4      2       3

Percentage of the requests served within a certain time (ms)
  50%      2
  66%      2
  75%      2
  80%      2
  90%      2
  95%      3
  98%      3
  99%      3
 100%      3 (longest request)
"""

AB_KEEPALIVE = """\
This is ApacheBench, Version 2.3 <$Revision$>
Copyright 1996 Adam Twiss, Zeus Technology Ltd, http://www.zeustech.net/
Licensed to The Apache Software Foundation, http://www.apache.org/

Benchmarking 127.0.0.1 (be patient)


Server Software:        BaseHTTP/0.6
Server Hostname:        127.0.0.1
Server Port:            18432

Document Path:          /
Document Length:        10 bytes

Concurrency Level:      5
Time taken for tests:   0.014 seconds
Complete requests:      200
Failed requests:        0
Keep-Alive requests:    200
Total transferred:      29200 bytes
HTML transferred:       2000 bytes
Requests per second:    13946.03 [#/sec] (mean)
Time per request:       0.359 [ms] (mean)
Time per request:       0.072 [ms] (mean, across all concurrent requests)
Transfer rate:          1988.40 [Kbytes/sec] received

Connection Times (ms)
              min  mean[+/-sd] median   max
Connect:        0    0   0.0      0       0
Processing:     0    0   0.7      0       9
Waiting:        0    0   0.7      0       9
Total:          0    0   0.7      0       9

Percentage of the requests served within a certain time (ms)
  50%      0
  66%      0
  75%      0
  80%      0
  90%      0
  95%      1
  98%      1
  99%      5
 100%      9 (longest request)
"""

WRK_MS = """\
Running 1s test @ http://127.0.0.1:18431/
  1 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    42.48ms    8.44ms  47.96ms   96.00%
    Req/Sec    91.09     15.46   121.00     72.73%
  Latency Distribution
     50%   43.99ms
     75%   44.01ms
     90%   44.06ms
     99%   47.96ms
  100 requests in 1.10s, 12.35KB read
Requests/sec:     90.87
Transfer/sec:     11.22KB
"""

WRK_US = """\
Running 1s test @ http://127.0.0.1:18432/
  1 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   282.08us  383.88us   7.36ms   95.10%
    Req/Sec    17.46k     2.85k   21.14k    60.00%
  Latency Distribution
     50%  189.00us
     75%  255.00us
     90%  400.00us
     99%    2.18ms
  17381 requests in 1.00s, 2.02MB read
Requests/sec:  17376.93
Transfer/sec:      2.02MB
"""

WRK_NON_2XX = """\
Running 1s test @ http://127.0.0.1:18431/mixed
  1 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    42.33ms    8.22ms  48.04ms   96.00%
    Req/Sec    91.09     17.35   121.00     72.73%
  Latency Distribution
     50%   43.98ms
     75%   44.01ms
     90%   44.03ms
     99%   48.04ms
  100 requests in 1.10s, 13.24KB read
  Non-2xx or 3xx responses: 25
Requests/sec:     90.90
Transfer/sec:     12.04KB
"""

WRK_SECONDS = """\
Running 2s test @ http://127.0.0.1:18431/slow
  1 threads and 2 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.20s    30.41us   1.20s   100.00%
    Req/Sec     1.00      0.00     1.00    100.00%
  Latency Distribution
     50%    1.20s\x20
     75%    1.20s\x20
     90%    1.20s\x20
     99%    1.20s\x20
  2 requests in 2.00s, 244.00B read
Requests/sec:      1.00
Transfer/sec:     121.76B
"""

WRK_SOCKET_ERRORS = """\
Running 1s test @ http://127.0.0.1:18431/reset
  1 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    10.11ms   14.06ms  48.22ms   79.59%
    Req/Sec     2.14k   289.48     2.44k    72.73%
  Latency Distribution
     50%  417.00us
     75%   19.58ms
     90%   34.66ms
     99%   44.04ms
  2346 requests in 1.10s, 279.94KB read
  Socket errors: connect 0, read 2349, write 0, timeout 0
Requests/sec:   2132.86
Transfer/sec:    254.51KB
"""

VEGETA_OK = ('{"latencies":{"total":1391837561,"mean":27836751,"50th":40731318,"90th":44755887,"95th":44805436,"99th":475170'
             '71,"max":47517071,"min":491932},"bytes_in":{"total":500,"mean":10},"bytes_out":{"total":0,"mean":0},"earliest"'
             ':"2026-11-27T09:51:07.444827788Z","latest":"2026-11-27T09:51:08.425375539Z","end":"2026-11-27T09:51:08.4701925'
             '28Z","duration":980547751,"wait":44816989,"requests":50,"rate":50.991907277343806,"throughput":48.763135740361'
             '03,"success":1,"status_codes":{"200":50},"errors":[]}')

VEGETA_MIXED = ('{"latencies":{"total":35550276,"mean":711005,"50th":613833,"90th":884518,"95th":1279547,"99th":3247906,"max":3'
                '247906,"min":403219},"bytes_in":{"total":870,"mean":17.4},"bytes_out":{"total":0,"mean":0},"earliest":"2026-11'
                '-27T09:54:56.27784215Z","latest":"2026-11-27T09:54:57.257542156Z","end":"2026-11-27T09:54:57.258409091Z","dura'
                'tion":979700006,"wait":866935,"requests":50,"rate":51.03603112563419,"throughput":38.7530911058932,"success":0'
                '.76,"status_codes":{"200":38,"404":12},"errors":["404 Not Found"]}')

# wrk against /slow with --timeout 1s: every request timed out, so no latency was recorded.
WRK_TIMEOUTS = """\
Running 2s test @ http://127.0.0.1:18431/slow
  1 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     0.00us    0.00us   0.00us    -nan%
    Req/Sec     3.00      0.00     3.00    100.00%
  Latency Distribution
     50%    0.00us
     75%    0.00us
     90%    0.00us
     99%    0.00us
  4 requests in 2.01s, 488.00B read
  Socket errors: connect 0, read 0, write 0, timeout 4
Requests/sec:      1.99
Transfer/sec:     243.17B
"""

# vegeta against a closed port: no answers, status 0.
VEGETA_REFUSED = ('{"latencies":{"total":2223536,"mean":444707,"50th":420928,"90th":680433,"95th":680433,"99th":680433,'
                  '"max":680433,"min":295843},"bytes_in":{"total":0,"mean":0},"bytes_out":{"total":0,"mean":0},'
                  '"earliest":"2026-11-27T09:51:54.209894017Z","latest":"2026-11-27T09:51:55.009933573Z",'
                  '"end":"2026-11-27T09:51:55.010354501Z","duration":800039556,"wait":420928,"requests":5,'
                  '"rate":6.249690984029295,"throughput":0,"success":0,"status_codes":{"0":5},"errors":["Get '
                  '\\"http://127.0.0.1:1/\\": dial tcp 0.0.0.0:0-\\u003e127.0.0.1:1: connect: connection refused"]}')


# --- units ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, ms", [
    ("850.00us", 0.85), ("282.08us", 0.282), ("0.00us", 0.0), ("1.23ms", 1.23), ("47.96ms", 47.96),
    ("2.00s", 2000.0), ("1.20s ", 1200.0), ("1.5m", 90000.0), ("2.00h", 7200000.0),
])
def test_wrk_duration_to_ms(text, ms):
    assert wrk_duration_to_ms(text) == ms


@pytest.mark.parametrize("text", ["", "12", "1.2 sec", "-1ms", "nan", "1.2ns"])
def test_wrk_duration_to_ms_refuses_what_wrk_does_not_print(text):
    with pytest.raises(LoadOutputError, match="not a wrk duration"):
        wrk_duration_to_ms(text)


@pytest.mark.parametrize("text, size", [
    ("100B", 100), ("488.00B", 488), ("512.00KB", 524288), ("12.35KB", 12646), ("1.21MB", 1268777),
    ("2.02MB", 2118124), ("10.5GB", 11274289152),
])
def test_wrk_size_to_bytes_is_1024_based(text, size):
    assert wrk_size_to_bytes(text) == size


@pytest.mark.parametrize("text", ["", "12", "1.2kB", "1.2 MiB", "MB"])
def test_wrk_size_to_bytes_refuses_what_wrk_does_not_print(text):
    with pytest.raises(LoadOutputError, match="not a wrk size"):
        wrk_size_to_bytes(text)


# --- ab ----------------------------------------------------------------------------------------------------------------

def test_parse_ab():
    assert parse_ab(AB_OK) == dict(
        requests=200, errors=0, requests_per_second=1511.98, time_per_request_ms=3.307,
        latency_ms=dict(mean=3.0, p50=2.0, p90=6.0, p99=11.0, max=12.0), status_codes={}, bytes=2000,
        duration_s=0.132)


def test_parse_ab_counts_failed_and_non_2xx_answers():
    figures = parse_ab(AB_FAILED_AND_NON_2XX)
    assert (figures["requests"], figures["errors"], figures["bytes"]) == (200, 200, 3490)
    assert figures["latency_ms"] == dict(mean=2.0, p50=2.0, p90=2.0, p99=3.0, max=4.0)


def test_parse_ab_errors_never_exceed_the_requests():
    text = AB_FAILED_AND_NON_2XX.replace("Non-2xx responses:      50", "Non-2xx responses:      120")
    assert parse_ab(text)["errors"] == 200


def test_parse_ab_all_404():
    figures = parse_ab(AB_404)
    assert figures["errors"] == figures["requests"] == 100


def test_parse_ab_keepalive_has_no_p999():
    figures = parse_ab(AB_KEEPALIVE)
    assert figures["latency_ms"] == dict(mean=0.0, p50=0.0, p90=0.0, p99=5.0, max=9.0)
    assert "p999" not in figures["latency_ms"] and figures["requests_per_second"] == 13946.03


def test_parse_ab_omits_percentiles_it_did_not_print():
    text = AB_OK.split("Percentage of the requests", 1)[0]
    assert parse_ab(text)["latency_ms"] == {"mean": 3.0}


@pytest.mark.parametrize("line, needle", [
    ("Complete requests:", "'Complete requests'"),
    ("Failed requests:", "'Failed requests'"),
    ("Time taken for tests:", "'Time taken for tests'"),
    ("Requests per second:", "'Requests per second'"),
    ("HTML transferred:", "'HTML transferred'"),
])
def test_parse_ab_names_the_missing_line(line, needle):
    text = "\n".join(ln for ln in AB_OK.splitlines() if not ln.startswith(line))
    with pytest.raises(LoadOutputError, match=needle):
        parse_ab(text)


# --- wrk ----------------------------------------------------------------------------------------------------------------

def test_parse_wrk_ms():
    assert parse_wrk(WRK_MS) == dict(
        requests=100, errors=0, requests_per_second=90.87, time_per_request_ms=42.48,
        latency_ms=dict(mean=42.48, p50=43.99, p90=44.06, p99=47.96, max=47.96), status_codes={},
        read_bytes=12646, duration_s=1.1)


def test_parse_wrk_us():
    figures = parse_wrk(WRK_US)
    assert figures["latency_ms"] == dict(mean=0.282, p50=0.189, p90=0.4, p99=2.18, max=7.36)
    assert (figures["requests"], figures["errors"], figures["read_bytes"]) == (17381, 0, 2118124)
    assert "bytes" not in figures and "p999" not in figures["latency_ms"]


def test_parse_wrk_seconds():
    figures = parse_wrk(WRK_SECONDS)
    assert figures["latency_ms"] == dict(mean=1200.0, p50=1200.0, p90=1200.0, p99=1200.0, max=1200.0)
    assert (figures["requests"], figures["duration_s"], figures["read_bytes"]) == (2, 2.0, 244)


def test_parse_wrk_non_2xx():
    figures = parse_wrk(WRK_NON_2XX)
    assert (figures["requests"], figures["errors"]) == (100, 25)


def test_parse_wrk_socket_errors_are_summed():
    figures = parse_wrk(WRK_SOCKET_ERRORS)
    assert (figures["requests"], figures["errors"]) == (2346, 2349)
    assert figures["latency_ms"]["p50"] == 0.417 and figures["latency_ms"]["p90"] == 34.66


def test_parse_wrk_timeouts():
    figures = parse_wrk(WRK_TIMEOUTS)
    assert (figures["requests"], figures["errors"], figures["duration_s"]) == (4, 4, 2.01)
    assert figures["latency_ms"]["max"] == 0.0


@pytest.mark.parametrize("line, needle", [
    ("  100 requests in", "'N requests in T, S read'"),
    ("Requests/sec:", "'Requests/sec'"),
    ("    Latency ", "'Latency' line"),
])
def test_parse_wrk_names_the_missing_line(line, needle):
    text = "\n".join(ln for ln in WRK_MS.splitlines() if not ln.startswith(line))
    with pytest.raises(LoadOutputError, match=needle):
        parse_wrk(text)


# --- vegeta -------------------------------------------------------------------------------------------------------------

def test_parse_vegeta_report():
    assert parse_vegeta_report(VEGETA_OK) == dict(
        requests=50, errors=0, requests_per_second=48.763, time_per_request_ms=27.837,
        latency_ms=dict(mean=27.837, p50=40.731, p90=44.756, p99=47.517, max=47.517), status_codes={"200": 50},
        duration_s=1.025)


def test_parse_vegeta_report_counts_non_2xx():
    figures = parse_vegeta_report(VEGETA_MIXED)
    assert figures["status_codes"] == {"200": 38, "404": 12} and figures["errors"] == 12


def test_parse_vegeta_report_counts_requests_without_an_answer():
    figures = parse_vegeta_report(VEGETA_REFUSED)
    assert figures["status_codes"] == {"0": 5} and figures["errors"] == figures["requests"] == 5


@pytest.mark.parametrize("text, needle", [
    ("", "no JSON report"),
    ("Error: open results.bin: no such file", "no JSON report"),
    ("[1, 2]", "no JSON object"),
    ('{"requests": 1}', "no 'latencies' object"),
    ('{"latencies": {"mean": 1}, "bytes_in": {}, "duration": 1, "wait": 0}', "no 'requests' number"),
    ('{"latencies": {}, "bytes_in": {}, "requests": 1, "duration": 1, "wait": 0}', "no 'latencies.mean'"),
])
def test_parse_vegeta_report_names_what_is_missing(text, needle):
    with pytest.raises(LoadOutputError, match=needle):
        parse_vegeta_report(text)


def test_garbage_is_refused_by_every_parser():
    garbage = "Segmentation fault\n\x00\x01 not a report at all\n"
    for parser, needle in ((parse_ab, "'Complete requests'"), (parse_wrk, "'N requests in T, S read'"),
                           (parse_vegeta_report, "no JSON report")):
        with pytest.raises(LoadOutputError, match=needle) as caught:
            parser(garbage)
        assert isinstance(caught.value, ValueError) and "\n" not in str(caught.value)


# --- command lines ------------------------------------------------------------------------------------------------------

def test_ab_argv():
    assert ab_argv("/usr/bin/ab", "http://127.0.0.1:8080/", 200, 5, 10.0) == [
        "/usr/bin/ab", "-n", "200", "-c", "5", "-s", "10", "http://127.0.0.1:8080/"]


def test_ab_argv_keepalive_and_whole_second_timeout():
    assert ab_argv("ab", "http://h/", 10, 2, 0.5, keepalive=True) == ["ab", "-n", "10", "-c", "2", "-k", "-s", "1",
                                                                      "http://h/"]


def test_wrk_argv():
    assert wrk_argv("/usr/bin/wrk", "http://127.0.0.1/", 2, 10, 5.0, 2.5) == [
        "/usr/bin/wrk", "-t", "2", "-c", "10", "-d", "5s", "--latency", "--timeout", "3s", "http://127.0.0.1/"]


def test_vegeta_closed_loop_and_lazy_argv():
    argv = vegeta_attack_argv("vegeta", 0, 2, 10.0, 10, "/tmp/x/r.bin", targets="/tmp/x/t.txt")
    assert argv[:4] == ["vegeta", "attack", "-rate", "0"]
    assert argv[argv.index("-workers") + 1] == argv[argv.index("-max-workers") + 1] == "10"
    assert argv[-3:] == ["-lazy", "-targets", "/tmp/x/t.txt"]
    assert "-lazy" not in vegeta_attack_argv("vegeta", 5, 2, 10.0, 10, "/tmp/x/r.bin")
    assert "-workers" not in vegeta_attack_argv("vegeta", 5, 2, 10.0, 10, "/tmp/x/r.bin")


def test_vegeta_distinct_targets():
    text = "".join(vegeta_distinct_targets("http://127.0.0.1:8/flood/x-", 3))
    assert text == ("GET http://127.0.0.1:8/flood/x-00000000\nGET http://127.0.0.1:8/flood/x-00000001\n"
                    "GET http://127.0.0.1:8/flood/x-00000002\n")
    assert list(vegeta_distinct_targets("http://h/", 0)) == []


# A -lazy attack of 3000 targets by 10 workers (vegeta v12.13.0): two workers found no target left.
VEGETA_EXHAUSTED = ('{"latencies":{"total":1855170617,"mean":617978,"50th":472296,"90th":1162894,"95th":1599827,'
                    '"99th":3127013,"max":9839861,"min":1226},"bytes_in":{"total":0,"mean":0},'
                    '"bytes_out":{"total":0,"mean":0},"earliest":"2026-11-27T11:58:16.9019658Z",'
                    '"latest":"2026-11-27T11:58:17.175358882Z","end":"2026-11-27T11:58:17.175906616Z",'
                    '"duration":273393082,"wait":547734,"requests":3002,"rate":10980.52656650617,"throughput":0,'
                    '"success":0,"status_codes":{"0":2,"404":3000},"errors":["404 Not Found","no targets to attack"]}')


def test_parse_vegeta_report_drops_workers_that_ran_out_of_targets():
    figures = parse_vegeta_report(VEGETA_EXHAUSTED, sent_at_most=3000)
    assert figures["requests"] == 3000 and figures["status_codes"] == {"404": 3000} and figures["errors"] == 3000
    assert figures["requests_per_second"] == round(3000 / 0.273940816, 3)
    # Without the bound, or with more targets than answers, nothing is dropped.
    assert parse_vegeta_report(VEGETA_EXHAUSTED)["requests"] == 3002
    assert parse_vegeta_report(VEGETA_EXHAUSTED, sent_at_most=5000)["status_codes"] == {"0": 2, "404": 3000}


def test_vegeta_argvs():
    assert vegeta_attack_argv("vegeta", 50, 1.5, 10.0, 64, "/tmp/x/r.bin") == [
        "vegeta", "attack", "-rate", "50/1s", "-duration", "1.5s", "-timeout", "10s", "-max-workers", "64",
        "-keepalive=true", "-max-body", "0", "-output", "/tmp/x/r.bin"]
    assert vegeta_attack_argv("vegeta", 1, 2.0, 0.25, 1, "r")[4:8] == ["-duration", "2s", "-timeout", "0.25s"]
    assert vegeta_report_argv("vegeta", "r.bin") == ["vegeta", "report", "-type=json", "r.bin"]
    assert vegeta_target("http://127.0.0.1:8/") == "GET http://127.0.0.1:8/\n"


def test_guarded_wraps_with_timeout_and_unsets_proxies():
    argv = guarded(["/usr/bin/ab", "-n", "1"], 41, timeout_bin="/usr/bin/timeout", env_bin="/usr/bin/env")
    assert argv[:4] == ["/usr/bin/timeout", "--kill-after=5", "41", "/usr/bin/env"]
    unset = argv[4:-3]
    assert unset[0::2] == ["-u"] * len(PROXY_VARIABLES) and unset[1::2] == list(PROXY_VARIABLES)
    assert {"http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "no_proxy"} <= set(unset)
    assert argv[-3:] == ["/usr/bin/ab", "-n", "1"] and "taskset" not in argv


def test_guarded_pins_with_taskset_right_before_the_tool():
    argv = guarded(["wrk", "http://h/"], 40, taskset_bin="/usr/bin/taskset", cpus=[0, 1])
    assert argv[-5:] == ["/usr/bin/taskset", "-c", "0,1", "wrk", "http://h/"]
    assert argv.index("/usr/bin/taskset") > argv.index("env")


def test_guard_seconds():
    assert guard_seconds("wrk", duration=5.0, timeout=10.0) == 45
    assert guard_seconds("wrk", duration=1.0, timeout=0.5) == 32  # wrk waits a whole second
    assert guard_seconds("vegeta", duration=1.5, timeout=0.5) == 32
    assert guard_seconds("ab", requests=200, concurrency=5, timeout=10.0) == 430
    assert guard_seconds("ab", requests=500, concurrency=10, timeout=10.0) == 530
    assert guard_seconds("ab", requests=100000, concurrency=1, timeout=120.0) == 600  # capped


# --- options ------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("tool, options, needle", [
    ("ab", dict(requests=0), "requests must be in 1..100000"),
    ("ab", dict(requests=100001), "requests must be in 1..100000"),
    ("ab", dict(concurrency=0), "concurrency must be in 1..1000"),
    ("ab", dict(requests=5000, concurrency=1001), "concurrency must be in 1..1000"),
    ("ab", dict(requests=5, concurrency=6), "must not exceed requests"),
    ("wrk", dict(duration=0), "duration must be in (0, 300]"),
    ("wrk", dict(duration=300.5), "duration must be in (0, 300]"),
    ("wrk", dict(duration=1.5), "whole seconds"),
    ("wrk", dict(concurrency=2, threads=3), "threads must be in 1..concurrency"),
    ("vegeta", dict(rate=-1), "rate must be in 0..100000"),
    ("vegeta", dict(rate=100001), "rate must be in 0..100000"),
    ("vegeta", dict(rate=0, max_workers=1001), "max_workers must be in 1..1000 with rate 0"),
    ("vegeta", dict(distinct_paths=-1), "distinct_paths must be in 0..1000000"),
    ("vegeta", dict(distinct_paths=1000001), "distinct_paths must be in 0..1000000"),
    ("wrk", dict(distinct_paths=10), "distinct_paths is for vegeta only"),
    ("ab", dict(distinct_paths=10), "distinct_paths is for vegeta only"),
    ("vegeta", dict(duration=-1), "duration must be in (0, 300]"),
    ("vegeta", dict(max_workers=0), "max_workers must be in"),
    ("ab", dict(timeout=0), "timeout must be in (0, 120]"),
    ("vegeta", dict(timeout=121), "timeout must be in (0, 120]"),
])
def test_bounds(tool, options, needle):
    problem = bounds_problem(tool, **options)
    assert problem and needle in problem and "\n" not in problem


@pytest.mark.parametrize("tool, options", [
    ("ab", {}), ("ab", dict(requests=1, concurrency=1)), ("ab", dict(requests=100000, concurrency=1000)),
    ("wrk", dict(duration=300, timeout=120)), ("vegeta", dict(duration=0.5, rate=100000, timeout=0.1)),
    ("ab", dict(duration=0, rate=0)),  # options of other tools are not checked
    ("vegeta", dict(rate=0, max_workers=10, distinct_paths=1000000)),
])
def test_bounds_allow(tool, options):
    assert bounds_problem(tool, **options) is None


@pytest.mark.parametrize("url, needle", [
    ("https://127.0.0.1/", "must start with http://"),
    ("ftp://127.0.0.1/", "must start with http://"),
    ("127.0.0.1:8080/", "must start with http://"),
    ("http:///path", "no host"),
    ("http://127.0.0.1:99999/", "not a valid URL"),
    ("http://127.0.0.1/a b", "without spaces"),
    ("http://127.0.0.1/\nGET http://127.0.0.2/", "without spaces"),
    ("", "must be an http:// URL"),
])
def test_url_problem(url, needle):
    problem = url_problem(url)
    assert problem and needle in problem and "\n" not in problem


def test_url_accepted_and_normalized():
    assert url_problem("http://127.0.0.1:8080/index.html?x=1") is None
    assert url_problem("HTTP://127.0.0.1") is None
    assert normalize_url("http://127.0.0.1:8080") == "http://127.0.0.1:8080/"
    assert normalize_url("http://127.0.0.1:8080/a?b") == "http://127.0.0.1:8080/a?b"


def test_cpus_problem():
    assert cpus_problem([0, 1], {0, 1}) is None
    assert cpus_problem([3], None) is None
    assert cpus_problem([1, 5], {0, 1}) == "cpus 5 not available to this process (allowed: 0,1)"
    assert "cpus -1" in cpus_problem([-1], None)


def test_failure_line_skips_ab_progress():
    assert failure_line("This is ApacheBench", "Completed 100 requests\napr_pollset_poll: The timeout specified "
                        "has expired (70007)\n") == "apr_pollset_poll: The timeout specified has expired (70007)"
    assert failure_line("Usage: wrk <options> <url>   \n  Options:", "") == "Usage: wrk <options> <url>"
    assert failure_line("", "") == "(no output)"


# --- the record ----------------------------------------------------------------------------------------------

def test_gcs_calls_leave_the_proxys_token_exchanges_out():
    stats = {"requests": {"metadata": 2, "list": 0, "read": 3, "token": 7}, "delayed_ms": 120}
    assert gcs_calls_by_kind(stats) == {"metadata": 2, "list": 0, "read": 3}


@pytest.mark.parametrize("stats", [{}, {"requests": []}, [], None])
def test_gcs_calls_refuse_stats_without_counters(stats):
    with pytest.raises(LoadOutputError, match="no 'requests' object"):
        gcs_calls_by_kind(stats)


def test_the_record_holds_the_labels_the_figures_and_the_gcs_calls_per_request():
    figures = parse_wrk(WRK_MS)
    record = finished_record({"target": "preset", "tool": "wrk"}, figures, gcs_calls={"metadata": 1, "read": 3})
    assert record["target"] == "preset" and record["tool"] == "wrk"
    assert record["failed"] is False and record["error"] == ""
    for key in ("requests", "errors", "requests_per_second", "time_per_request_ms", "latency_ms", "duration_s"):
        assert record[key] == figures[key], key
    assert record["gcs_calls"] == 4 and record["gcs_calls_by_kind"] == {"metadata": 1, "read": 3}
    assert record["gcs_calls_per_request"] == round(4 / figures["requests"], 4)


def test_a_record_without_counters_has_no_gcs_calls():
    record = finished_record({}, parse_wrk(WRK_MS))
    assert (record["gcs_calls"], record["gcs_calls_by_kind"], record["gcs_calls_per_request"]) == (None, None, None)


def test_a_failed_run_keeps_its_error_and_its_gcs_calls_but_no_figures():
    record = finished_record({"target": "2016 configuration"}, error="ab against http://x/ failed (rc 1): timeout",
                             gcs_calls={"read": 5})
    assert record["failed"] is True and record["error"].startswith("ab against")
    assert record["requests"] == 0 and record["requests_per_second"] is None and record["latency_ms"] == {}
    assert record["gcs_calls"] == 5 and record["gcs_calls_per_request"] is None
