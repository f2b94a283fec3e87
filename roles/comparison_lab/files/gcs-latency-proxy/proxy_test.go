package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestClassify(t *testing.T) {
	cases := []struct {
		method, target, want string
	}{
		{"GET", "/storage/v1/b/bkt/o/dir%2Ffile.txt?alt=media", kindRead},
		{"GET", "/storage/v1/b/bkt/o/file.txt?generation=3&alt=media", kindRead},
		{"GET", "/download/storage/v1/b/bkt/o/dir%2Ffile.txt?alt=media", kindRead},
		{"GET", "/download/storage/v1/b/bkt/o/x", kindRead},
		{"GET", "/storage/v1/b/bkt/o", kindList},
		{"GET", "/storage/v1/b/bkt/o?prefix=dir%2F&delimiter=%2F&pageToken=abc", kindList},
		{"GET", "/storage/v1/b/bkt/o/dir%2Fsub%2Ffile.txt", kindMetadata},
		{"GET", "/storage/v1/b/bkt/o/file.txt?alt=json", kindMetadata},
		{"GET", "/storage/v1/b/bkt", kindMetadata},
		{"POST", "/upload/storage/v1/b/bkt/o?uploadType=multipart&name=a", kindWrite},
		{"PUT", "/upload/storage/v1/b/bkt/o?uploadType=resumable&upload_id=1", kindWrite},
		{"PATCH", "/storage/v1/b/bkt/o/a", kindWrite},
		{"DELETE", "/storage/v1/b/bkt/o/dir%2Fa", kindWrite},
		{"POST", "/storage/v1/b/bkt/o/a/compose", kindWrite},
		{"POST", "/token", kindToken},
		{"POST", "/oauth2/v4/token", kindToken},
		{"GET", "/o/oauth2/token", kindToken},
		{"GET", "/storage/v1/b", kindOther},
		{"GET", "/storage/v1/b/bkt/o/a/acl", kindOther},
		{"GET", "/bkt/obj", kindRead}, // XML API read, as gcsfuse does
		{"GET", "/bkt/dir/obj.png", kindRead},
		{"GET", "/bkt/", kindOther},
		{"GET", "/", kindOther},
		{"HEAD", "/storage/v1/b/bkt/o/a", kindOther},
	}
	for _, c := range cases {
		r := httptest.NewRequest(c.method, c.target, nil)
		if got := classify(r); got != c.want {
			t.Errorf("classify(%s %s) = %q, want %q", c.method, c.target, got, c.want)
		}
	}
}

func TestDelayDistribution(t *testing.T) {
	const n = 2000
	base, jitter := 30*time.Millisecond, 10*time.Millisecond

	rnd := newLockedRand(42)
	var sum time.Duration
	for range n {
		d := delay(config{Latency: base, Jitter: jitter}, rnd)
		if d < base-jitter || d > base+jitter {
			t.Fatalf("delay %s outside [%s, %s]", d, base-jitter, base+jitter)
		}
		sum += d
	}
	if mean := sum / n; mean < base-time.Millisecond || mean > base+time.Millisecond {
		t.Errorf("mean delay %s, want within 1ms of %s", mean, base)
	}

	tail := config{Latency: base, Jitter: jitter, TailProb: 1, TailMin: 150 * time.Millisecond, TailMax: 300 * time.Millisecond}
	for range n {
		if d := delay(tail, rnd); d < tail.TailMin || d > tail.TailMax {
			t.Fatalf("tail delay %s outside [%s, %s]", d, tail.TailMin, tail.TailMax)
		}
	}

	// Zero latency, jitter and tail probability means no delay, even with tail bounds set.
	for _, c := range []config{{}, {TailMin: time.Second, TailMax: 2 * time.Second}} {
		if d := delay(c, rnd); d != 0 {
			t.Errorf("delay(%v) = %s, want 0", c, d)
		}
	}
	// Jitter larger than the base is floored at zero.
	for range n {
		if d := delay(config{Latency: time.Millisecond, Jitter: 10 * time.Millisecond}, rnd); d < 0 {
			t.Fatalf("negative delay %s", d)
		}
	}
	// A fixed seed reproduces the sequence.
	a, b := newLockedRand(7), newLockedRand(7)
	for range 100 {
		c := config{Latency: base, Jitter: jitter, TailProb: 0.1, TailMin: tail.TailMin, TailMax: tail.TailMax}
		if delay(c, a) != delay(c, b) {
			t.Fatal("same seed gave different delays")
		}
	}
}

// recorder is a fake upstream that remembers what reached it.
type recorder struct {
	srv  *httptest.Server
	mu   sync.Mutex
	seen []seenReq
}

type seenReq struct{ method, path, auth, host string }

func newRecorder(t *testing.T, h http.HandlerFunc) *recorder {
	t.Helper()
	rec := &recorder{}
	rec.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		rec.seen = append(rec.seen, seenReq{r.Method, r.URL.EscapedPath(), r.Header.Get("Authorization"), r.Host})
		rec.mu.Unlock()
		if h != nil {
			h(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"kind":"storage#object"}`)
	}))
	t.Cleanup(rec.srv.Close)
	return rec
}

func (rec *recorder) requests() []seenReq {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]seenReq(nil), rec.seen...)
}

func startProxy(t *testing.T, upstream string, cfg config, maxInFlight int) (*proxy, string) {
	t.Helper()
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	p := newProxy(options{upstream: u, cfg: cfg, maxInFlight: maxInFlight, seed: 1})
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	t.Cleanup(p.transport.CloseIdleConnections)
	return p, srv.URL
}

// client never uses an environment proxy and never reuses connections, so a
// reset is never retried transparently on another connection.
var client = &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}, Timeout: 10 * time.Second}

type result struct {
	resp    *http.Response
	body    []byte
	elapsed time.Duration
	err     error
}

func send(ctx context.Context, method, target, body string, hdr map[string]string) result {
	req, err := http.NewRequestWithContext(ctx, method, target, strings.NewReader(body))
	if err != nil {
		return result{err: err}
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return result{err: err, elapsed: time.Since(start)}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return result{resp: resp, body: b, elapsed: time.Since(start), err: err}
}

func mustSend(t *testing.T, method, target, body string, hdr map[string]string) result {
	t.Helper()
	r := send(context.Background(), method, target, body, hdr)
	if r.err != nil {
		t.Fatalf("%s %s: %v", method, target, r.err)
	}
	return r
}

func getStats(t *testing.T, base string) statsJSON {
	t.Helper()
	r := mustSend(t, "GET", base+"/__proxy/stats", "", nil)
	var s statsJSON
	if err := json.Unmarshal(r.body, &s); err != nil {
		t.Fatalf("stats: %v: %s", err, r.body)
	}
	return s
}

func TestEndToEndDelayAndCounters(t *testing.T) {
	up := newRecorder(t, nil)
	_, base := startProxy(t, up.srv.URL, config{Latency: 50 * time.Millisecond}, 8)

	auth := map[string]string{"Authorization": "Bearer test-token"}
	r := mustSend(t, "GET", base+"/storage/v1/b/bkt/o/dir%2Ffile.txt", "", auth)
	if r.resp.StatusCode != 200 || r.elapsed < 50*time.Millisecond {
		t.Fatalf("metadata: status %d after %s, want 200 after >= 50ms", r.resp.StatusCode, r.elapsed)
	}
	seen := up.requests()
	want := seenReq{"GET", "/storage/v1/b/bkt/o/dir%2Ffile.txt", "Bearer test-token", strings.TrimPrefix(up.srv.URL, "http://")}
	if len(seen) != 1 || seen[0] != want {
		t.Fatalf("upstream saw %+v, want [%+v]", seen, want)
	}

	if r := mustSend(t, "POST", base+"/token", "grant_type=x", nil); r.resp.StatusCode != 200 || r.elapsed >= 20*time.Millisecond {
		t.Errorf("token: status %d after %s, want 200 in < 20ms", r.resp.StatusCode, r.elapsed)
	}
	mustSend(t, "GET", base+"/storage/v1/b/bkt/o?prefix=dir%2F&delimiter=%2F", "", auth)
	mustSend(t, "GET", base+"/storage/v1/b/bkt/o/dir%2Ffile.txt?alt=media", "", auth)
	mustSend(t, "POST", base+"/upload/storage/v1/b/bkt/o?uploadType=media&name=x", "data", auth)
	mustSend(t, "GET", base+"/storage/v1/b/bkt", "", auth)

	s := getStats(t, base)
	wantReq := map[string]int64{"metadata": 2, "list": 1, "read": 1, "write": 1, "token": 1, "other": 0}
	for k, v := range wantReq {
		if s.Requests[k] != v {
			t.Errorf("requests[%s] = %d, want %d (stats %+v)", k, s.Requests[k], v, s.Requests)
		}
	}
	if s.DelayMsTotal != 250 || s.InFlight != 0 || s.Config.LatencyMs != 50 {
		t.Errorf("delay_ms_total=%v in_flight=%d latency_ms=%v, want 250, 0, 50", s.DelayMsTotal, s.InFlight, s.Config.LatencyMs)
	}
	if n := len(up.requests()); n != 6 {
		t.Errorf("upstream saw %d requests, want 6", n)
	}

	if r := mustSend(t, "POST", base+"/__proxy/reset", "", nil); r.resp.StatusCode != http.StatusNoContent {
		t.Fatalf("reset: status %d", r.resp.StatusCode)
	}
	s = getStats(t, base)
	for k, v := range s.Requests {
		if v != 0 {
			t.Errorf("after reset requests[%s] = %d", k, v)
		}
	}
	if s.Faults != (faultsJSON{}) || s.DelayMsTotal != 0 {
		t.Errorf("after reset faults=%+v delay=%v", s.Faults, s.DelayMsTotal)
	}
	if r := mustSend(t, "GET", base+"/__proxy/healthz", "", nil); r.resp.StatusCode != 200 || string(r.body) != "ok" {
		t.Errorf("healthz: %d %q", r.resp.StatusCode, r.body)
	}
	if n := len(up.requests()); n != 6 {
		t.Errorf("control endpoints reached upstream: %d requests", n)
	}
}

func TestErrorInjection(t *testing.T) {
	up := newRecorder(t, nil)
	_, base := startProxy(t, up.srv.URL, config{ErrorRate: 1}, 8)

	r := mustSend(t, "GET", base+"/storage/v1/b/bkt/o/a", "", nil)
	var body struct {
		Error struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
	if r.resp.StatusCode != 503 || body.Error.Code != 503 || body.Error.Message != injectedMessage {
		t.Fatalf("got %d %s", r.resp.StatusCode, r.body)
	}
	if n := len(up.requests()); n != 0 {
		t.Fatalf("upstream called %d times", n)
	}
	// The token endpoint is never faulted.
	if r := mustSend(t, "POST", base+"/token", "", nil); r.resp.StatusCode != 200 {
		t.Errorf("token: status %d, want 200", r.resp.StatusCode)
	}
	if s := getStats(t, base); s.Faults.Error != 1 {
		t.Errorf("faults.error = %d, want 1", s.Faults.Error)
	}
}

func TestResetInjection(t *testing.T) {
	up := newRecorder(t, nil)
	_, base := startProxy(t, up.srv.URL, config{ResetRate: 1}, 8)

	r := send(context.Background(), "GET", base+"/storage/v1/b/bkt/o/a?alt=media", "", nil)
	if r.err == nil {
		t.Fatalf("want a connection error, got status %d", r.resp.StatusCode)
	}
	if n := len(up.requests()); n != 0 {
		t.Fatalf("upstream called %d times", n)
	}
	if s := getStats(t, base); s.Faults.Reset != 1 {
		t.Errorf("faults.reset = %d, want 1", s.Faults.Reset)
	}
}

func TestStallInjection(t *testing.T) {
	up := newRecorder(t, nil)
	_, base := startProxy(t, up.srv.URL, config{StallRate: 1, Stall: 100 * time.Millisecond}, 8)

	r := mustSend(t, "GET", base+"/storage/v1/b/bkt/o/a", "", nil)
	if r.resp.StatusCode != 200 || r.elapsed < 100*time.Millisecond {
		t.Fatalf("status %d after %s, want 200 after >= 100ms", r.resp.StatusCode, r.elapsed)
	}
	if s := getStats(t, base); s.Faults.Stall != 1 || len(up.requests()) != 1 {
		t.Errorf("faults.stall = %d, upstream calls = %d; want 1, 1", s.Faults.Stall, len(up.requests()))
	}
}

func TestStallRespectsClientCancel(t *testing.T) {
	up := newRecorder(t, nil)
	p, base := startProxy(t, up.srv.URL, config{StallRate: 1, Stall: 5 * time.Second}, 8)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if r := send(ctx, "GET", base+"/storage/v1/b/bkt/o/a", "", nil); r.err == nil {
		t.Fatal("want the client to time out")
	}
	// The handler notices the closed connection asynchronously; poll the gauge.
	deadline := time.Now().Add(2 * time.Second)
	for p.stats.inFlight.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("stalled request still in flight after client left")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := len(up.requests()); n != 0 {
		t.Errorf("upstream called %d times after client left", n)
	}
}

func TestConfigUpdate(t *testing.T) {
	up := newRecorder(t, nil)
	_, base := startProxy(t, up.srv.URL, config{}, 8)

	if r := mustSend(t, "GET", base+"/storage/v1/b/bkt", "", nil); r.elapsed >= 40*time.Millisecond {
		t.Fatalf("undelayed request took %s", r.elapsed)
	}
	r := mustSend(t, "PUT", base+"/__proxy/config", `{"latency_ms": 40}`, nil)
	var got configJSON
	if err := json.Unmarshal(r.body, &got); err != nil || r.resp.StatusCode != 200 || got.LatencyMs != 40 {
		t.Fatalf("PUT config: %d %s (%v)", r.resp.StatusCode, r.body, err)
	}
	if r := mustSend(t, "GET", base+"/storage/v1/b/bkt", "", nil); r.elapsed < 40*time.Millisecond {
		t.Fatalf("request after config change took %s, want >= 40ms", r.elapsed)
	}

	invalid := []struct{ body, field string }{
		{`{"tail_prob": 1.5}`, "tail_prob"},
		{`{"latency_ms": 5, "error_rate": -0.1}`, "error_rate"},
		{`{"stall_ms": -1}`, "stall_ms"},
		{`{"tail_min_ms": 500, "tail_max_ms": 100}`, "tail_min_ms"},
		{`{"latency": 5}`, "latency"},
	}
	for _, c := range invalid {
		r := mustSend(t, "PUT", base+"/__proxy/config", c.body, nil)
		msg := strings.TrimSuffix(string(r.body), "\n")
		if r.resp.StatusCode != 400 || !strings.Contains(msg, c.field) || strings.Contains(msg, "\n") {
			t.Errorf("PUT %s: %d %q, want 400 naming %s", c.body, r.resp.StatusCode, msg, c.field)
		}
	}
	if s := getStats(t, base); s.Config != (configJSON{LatencyMs: 40}) {
		t.Errorf("invalid updates changed config: %+v", s.Config)
	}
}

func TestMediaStreaming(t *testing.T) {
	payload := make([]byte, 1<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range payload {
		payload[i] = byte(rng.Uint32())
	}
	up := newRecorder(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		for off := 0; off < len(payload); off += 64 << 10 {
			w.Write(payload[off : off+64<<10])
		}
	})
	_, base := startProxy(t, up.srv.URL, config{}, 8)

	r := mustSend(t, "GET", base+"/download/storage/v1/b/bkt/o/big%2Fblob?alt=media", "", nil)
	if r.resp.StatusCode != 200 || !bytes.Equal(r.body, payload) {
		t.Fatalf("status %d, got %d bytes, equal=%v", r.resp.StatusCode, len(r.body), bytes.Equal(r.body, payload))
	}
	if s := getStats(t, base); s.Requests[kindRead] != 1 {
		t.Errorf("requests.read = %d, want 1", s.Requests[kindRead])
	}
}

func TestMaxInFlight(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	up := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		close(started)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	_, base := startProxy(t, up.srv.URL, config{}, 1)

	first := make(chan result, 1)
	go func() { first <- send(context.Background(), "GET", base+"/storage/v1/b/bkt/o/a?alt=media", "", nil) }()
	<-started

	r := mustSend(t, "GET", base+"/storage/v1/b/bkt/o/b", "", nil)
	if r.resp.StatusCode != 503 || !strings.Contains(string(r.body), "proxy saturated") {
		t.Errorf("second request: %d %s, want 503 proxy saturated", r.resp.StatusCode, r.body)
	}
	s := getStats(t, base)
	if s.Faults.Saturated != 1 || s.InFlight != 1 {
		t.Errorf("faults.saturated = %d, in_flight = %d; want 1, 1", s.Faults.Saturated, s.InFlight)
	}
	close(release)
	if fr := <-first; fr.err != nil || fr.resp.StatusCode != 200 {
		t.Errorf("first request: %+v", fr)
	}
}

func TestParseFlags(t *testing.T) {
	env := func(kv map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := kv[k]; return v, ok }
	}
	s, err := parseFlags([]string{"-upstream", "http://127.0.0.1:9", "-latency", "7ms"},
		env(map[string]string{"GCS_PROXY_LATENCY": "5ms", "GCS_PROXY_JITTER": "3ms", "GCS_PROXY_SEED": "9"}))
	if err != nil {
		t.Fatal(err)
	}
	if s.cfg.Latency != 7*time.Millisecond || s.cfg.Jitter != 3*time.Millisecond || s.seed != 9 || s.listen != "127.0.0.1:4444" {
		t.Errorf("got latency=%s jitter=%s seed=%d listen=%s", s.cfg.Latency, s.cfg.Jitter, s.seed, s.listen)
	}

	bad := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{nil, nil, "-upstream"},
		{[]string{"-upstream", "ftp://x"}, nil, "-upstream"},
		{[]string{"-upstream", "http://127.0.0.1:9", "-tail-prob", "2"}, nil, "-tail-prob"},
		{[]string{"-upstream", "http://127.0.0.1:9", "-latency", "soon"}, nil, "-latency"},
		{[]string{"-upstream", "http://127.0.0.1:9"}, map[string]string{"GCS_PROXY_ERROR_RATE": "x"}, "-error-rate"},
		{[]string{"-upstream", "http://127.0.0.1:9", "-tail-min", "1s"}, nil, "-tail-min"},
	}
	for _, c := range bad {
		_, err := parseFlags(c.args, env(c.env))
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("parseFlags(%q, %v) = %v, want one-line error naming %s", c.args, c.env, err, c.want)
		}
	}
}
