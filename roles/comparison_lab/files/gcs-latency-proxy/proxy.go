package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Request kinds; they are also the counter names in /__proxy/stats.
const (
	kindMetadata = "metadata"
	kindList     = "list"
	kindRead     = "read"
	kindWrite    = "write"
	kindToken    = "token"
	kindOther    = "other"
)

var kinds = []string{kindMetadata, kindList, kindRead, kindWrite, kindToken, kindOther}

const (
	controlPrefix   = "/__proxy/"
	injectedMessage = "injected by gcs-latency-proxy"
	// maxDuration bounds every configured delay so a typo cannot park requests for days.
	maxDuration = time.Hour
)

// config holds the run-time tunable injection settings.
type config struct {
	Latency   time.Duration
	Jitter    time.Duration
	TailProb  float64
	TailMin   time.Duration
	TailMax   time.Duration
	ErrorRate float64
	StallRate float64
	Stall     time.Duration
	ResetRate float64
}

// fieldError names the offending setting by its JSON name so that both the
// control API and the flag parser can report it in their own vocabulary.
type fieldError struct{ field, msg string }

func (e *fieldError) Error() string { return e.field + ": " + e.msg }

func (c config) validate() error {
	probs := []struct {
		field string
		v     float64
	}{
		{"tail_prob", c.TailProb}, {"error_rate", c.ErrorRate},
		{"stall_rate", c.StallRate}, {"reset_rate", c.ResetRate},
	}
	for _, p := range probs {
		if !(p.v >= 0 && p.v <= 1) { // also rejects NaN
			return &fieldError{p.field, fmt.Sprintf("must be a probability in [0,1], got %v", p.v)}
		}
	}
	durs := []struct {
		field string
		v     time.Duration
	}{
		{"latency_ms", c.Latency}, {"jitter_ms", c.Jitter}, {"tail_min_ms", c.TailMin},
		{"tail_max_ms", c.TailMax}, {"stall_ms", c.Stall},
	}
	for _, d := range durs {
		if d.v < 0 || d.v > maxDuration {
			return &fieldError{d.field, fmt.Sprintf("must be between 0 and %s, got %s", maxDuration, d.v)}
		}
	}
	if c.TailMin > c.TailMax {
		return &fieldError{"tail_min_ms", fmt.Sprintf("must not exceed the tail maximum (%s > %s)", c.TailMin, c.TailMax)}
	}
	return nil
}

func (c config) String() string {
	return fmt.Sprintf("latency=%s jitter=%s tail-prob=%g tail=[%s,%s] error-rate=%g stall-rate=%g stall=%s reset-rate=%g",
		c.Latency, c.Jitter, c.TailProb, c.TailMin, c.TailMax, c.ErrorRate, c.StallRate, c.Stall, c.ResetRate)
}

// configJSON is the wire form of config: durations in (fractional) milliseconds.
type configJSON struct {
	LatencyMs float64 `json:"latency_ms"`
	JitterMs  float64 `json:"jitter_ms"`
	TailProb  float64 `json:"tail_prob"`
	TailMinMs float64 `json:"tail_min_ms"`
	TailMaxMs float64 `json:"tail_max_ms"`
	ErrorRate float64 `json:"error_rate"`
	StallRate float64 `json:"stall_rate"`
	StallMs   float64 `json:"stall_ms"`
	ResetRate float64 `json:"reset_rate"`
}

// configPatch is a PUT /__proxy/config body; nil fields stay unchanged.
type configPatch struct {
	LatencyMs *float64 `json:"latency_ms"`
	JitterMs  *float64 `json:"jitter_ms"`
	TailProb  *float64 `json:"tail_prob"`
	TailMinMs *float64 `json:"tail_min_ms"`
	TailMaxMs *float64 `json:"tail_max_ms"`
	ErrorRate *float64 `json:"error_rate"`
	StallRate *float64 `json:"stall_rate"`
	StallMs   *float64 `json:"stall_ms"`
	ResetRate *float64 `json:"reset_rate"`
}

func toMs(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func (c config) json() configJSON {
	return configJSON{
		LatencyMs: toMs(c.Latency), JitterMs: toMs(c.Jitter), TailProb: c.TailProb,
		TailMinMs: toMs(c.TailMin), TailMaxMs: toMs(c.TailMax), ErrorRate: c.ErrorRate,
		StallRate: c.StallRate, StallMs: toMs(c.Stall), ResetRate: c.ResetRate,
	}
}

// apply returns c with the patch applied and validated; c itself is never modified.
func (c config) apply(p configPatch) (config, error) {
	durs := []struct {
		field string
		src   *float64
		dst   *time.Duration
	}{
		{"latency_ms", p.LatencyMs, &c.Latency}, {"jitter_ms", p.JitterMs, &c.Jitter},
		{"tail_min_ms", p.TailMinMs, &c.TailMin}, {"tail_max_ms", p.TailMaxMs, &c.TailMax},
		{"stall_ms", p.StallMs, &c.Stall},
	}
	for _, d := range durs {
		if d.src == nil {
			continue
		}
		// Check before converting: a huge float does not fit a Duration.
		if !(*d.src >= 0 && *d.src <= toMs(maxDuration)) {
			return c, &fieldError{d.field, fmt.Sprintf("must be between 0 and %v, got %v", toMs(maxDuration), *d.src)}
		}
		*d.dst = time.Duration(*d.src * float64(time.Millisecond))
	}
	probs := []struct {
		src *float64
		dst *float64
	}{
		{p.TailProb, &c.TailProb}, {p.ErrorRate, &c.ErrorRate},
		{p.StallRate, &c.StallRate}, {p.ResetRate, &c.ResetRate},
	}
	for _, q := range probs {
		if q.src != nil {
			*q.dst = *q.src
		}
	}
	return c, c.validate()
}

// lockedRand serialises all draws through one source, so a fixed seed gives
// a reproducible sequence (for a given request order).
type lockedRand struct {
	mu sync.Mutex
	r  *rand.Rand
}

func newLockedRand(seed uint64) *lockedRand {
	return &lockedRand{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// Float64 returns a uniform draw in [0, 1).
func (l *lockedRand) Float64() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Float64()
}

// chance reports true with probability p; p == 0 consumes no randomness.
func (l *lockedRand) chance(p float64) bool { return p > 0 && l.Float64() < p }

// delay draws one request's injected latency: B ± J (floored at 0), or with
// probability TailProb a uniform tail delay in [TailMin, TailMax].
func delay(cfg config, rnd *lockedRand) time.Duration {
	if cfg.Latency == 0 && cfg.Jitter == 0 && cfg.TailProb == 0 {
		return 0
	}
	if rnd.chance(cfg.TailProb) {
		return cfg.TailMin + time.Duration(rnd.Float64()*float64(cfg.TailMax-cfg.TailMin))
	}
	d := cfg.Latency
	if cfg.Jitter > 0 {
		d += time.Duration((2*rnd.Float64() - 1) * float64(cfg.Jitter))
	}
	return max(d, 0)
}

// classify maps a request to a counter kind. It works on the escaped path so
// an object name containing %2F stays one segment.
func classify(r *http.Request) string {
	path := r.URL.EscapedPath()
	switch {
	case strings.HasSuffix(path, "/token"):
		return kindToken
	case r.Method == http.MethodPost, r.Method == http.MethodPut,
		r.Method == http.MethodPatch, r.Method == http.MethodDelete:
		return kindWrite
	case r.Method != http.MethodGet:
		return kindOther
	case strings.HasPrefix(path, "/download/storage/v1/"):
		return kindRead
	}
	rest, ok := strings.CutPrefix(path, "/storage/v1/b/")
	if !ok {
		// gcsfuse reads object bodies with the XML API: GET /{bucket}/{object...}.
		if seg := strings.SplitN(strings.TrimPrefix(path, "/"), "/", 2); len(seg) == 2 && seg[0] != "" &&
			seg[1] != "" && seg[0] != "storage" && seg[0] != "upload" && !strings.HasPrefix(path, controlPrefix) {
			return kindRead
		}
		return kindOther
	}
	seg := strings.Split(rest, "/")
	switch {
	case seg[0] == "":
		return kindOther
	case len(seg) == 1:
		return kindMetadata // bucket get
	case len(seg) == 2 && seg[1] == "o":
		return kindList
	case len(seg) == 3 && seg[1] == "o" && seg[2] != "":
		if r.URL.Query().Get("alt") == "media" {
			return kindRead
		}
		return kindMetadata
	}
	return kindOther
}

type counters struct {
	requests   map[string]*atomic.Int64 // fixed key set, built once: safe for concurrent reads
	errors     atomic.Int64
	stalls     atomic.Int64
	resets     atomic.Int64
	saturated  atomic.Int64
	delayNanos atomic.Int64
	inFlight   atomic.Int64 // a gauge, not reset by /__proxy/reset
}

type faultsJSON struct {
	Error     int64 `json:"error"`
	Stall     int64 `json:"stall"`
	Reset     int64 `json:"reset"`
	Saturated int64 `json:"saturated"`
}

type statsJSON struct {
	Requests     map[string]int64 `json:"requests"`
	Faults       faultsJSON       `json:"faults"`
	DelayMsTotal float64          `json:"delay_ms_total"`
	InFlight     int64            `json:"in_flight"`
	MaxInFlight  int64            `json:"max_in_flight"`
	Config       configJSON       `json:"config"`
}

type options struct {
	upstream    *url.URL
	cfg         config
	maxInFlight int
	seed        uint64
	verbose     bool
}

// proxy is the http.Handler: control endpoints under /__proxy/, everything
// else is counted, delayed, maybe faulted, then reverse-proxied upstream.
type proxy struct {
	cfg         atomic.Pointer[config]
	cfgMu       sync.Mutex // serialises read-modify-write of cfg
	rnd         *lockedRand
	rp          *httputil.ReverseProxy
	transport   *http.Transport
	control     *http.ServeMux
	maxInFlight int64
	verbose     bool
	stats       counters
}

func newProxy(o options) *proxy {
	p := &proxy{
		rnd:         newLockedRand(o.seed),
		maxInFlight: int64(o.maxInFlight),
		verbose:     o.verbose,
		transport: &http.Transport{
			Proxy:                 nil, // only ever talk to the upstream, never an env proxy
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:          256,
			MaxIdleConnsPerHost:   64,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ExpectContinueTimeout: time.Second,
			DisableCompression:    true, // pass bytes through untouched (stored gzip objects, CRCs)
		},
	}
	cfg := o.cfg
	p.cfg.Store(&cfg)
	p.stats.requests = make(map[string]*atomic.Int64, len(kinds))
	for _, k := range kinds {
		p.stats.requests[k] = new(atomic.Int64)
	}

	errLog := log.New(io.Discard, "", 0)
	if o.verbose {
		errLog = log.Default()
	}
	p.rp = &httputil.ReverseProxy{
		// SetURL also sets the outbound Host to the upstream's; Authorization passes unchanged.
		Rewrite:       func(pr *httputil.ProxyRequest) { pr.SetURL(o.upstream) },
		Transport:     p.transport,
		FlushInterval: -1, // stream media as it arrives
		ErrorLog:      errLog,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if p.verbose {
				log.Printf("upstream error: %s %s: %v", r.Method, r.URL.RequestURI(), err)
			}
			if r.Context().Err() == nil {
				writeGCSError(w, http.StatusBadGateway, "gcs-latency-proxy: upstream unavailable")
			}
		},
	}

	p.control = http.NewServeMux()
	p.control.HandleFunc("GET /__proxy/healthz", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok")
	})
	p.control.HandleFunc("GET /__proxy/stats", p.handleStats)
	p.control.HandleFunc("POST /__proxy/reset", p.handleReset)
	p.control.HandleFunc("GET /__proxy/config", p.handleGetConfig)
	p.control.HandleFunc("PUT /__proxy/config", p.handlePutConfig)
	return p
}

func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, controlPrefix) {
		p.control.ServeHTTP(w, r)
		return
	}
	kind := classify(r)
	p.stats.requests[kind].Add(1)

	if p.stats.inFlight.Add(1) > p.maxInFlight {
		p.stats.inFlight.Add(-1)
		p.stats.saturated.Add(1)
		writeGCSError(w, http.StatusServiceUnavailable, "proxy saturated")
		return
	}
	defer p.stats.inFlight.Add(-1)

	start := time.Now()
	outcome := "proxied"
	if kind != kindToken {
		outcome = p.inject(w, r)
	}
	if outcome == "proxied" || outcome == "stalled" {
		p.rp.ServeHTTP(w, r)
	}
	if p.verbose {
		log.Printf("%s %s %s %s %s", kind, r.Method, r.URL.RequestURI(), outcome, time.Since(start).Round(time.Microsecond))
	}
}

// inject applies the delay and at most one fault. It returns "proxied" or
// "stalled" when the request should still go upstream.
func (p *proxy) inject(w http.ResponseWriter, r *http.Request) string {
	cfg := p.cfg.Load()
	if d := delay(*cfg, p.rnd); d > 0 {
		p.stats.delayNanos.Add(int64(d))
		if !sleepCtx(r.Context(), d) {
			return "client gone"
		}
	}
	switch {
	case p.rnd.chance(cfg.ErrorRate):
		p.stats.errors.Add(1)
		writeGCSError(w, http.StatusServiceUnavailable, injectedMessage)
		return "error"
	case p.rnd.chance(cfg.ResetRate):
		p.stats.resets.Add(1)
		resetConn(w)
		return "reset"
	case p.rnd.chance(cfg.StallRate):
		p.stats.stalls.Add(1)
		if !sleepCtx(r.Context(), cfg.Stall) {
			return "client gone"
		}
		return "stalled"
	}
	return "proxied"
}

// sleepCtx waits for d; false means the client went away first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// resetConn aborts the client connection with a TCP RST (linger 0), the way a
// middlebox or overloaded frontend would.
func resetConn(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		writeGCSError(w, http.StatusServiceUnavailable, injectedMessage+" (reset unsupported)")
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	conn.Close()
}

// writeGCSError answers in the JSON API error shape so GCS clients parse it
// and apply their normal retry policy.
func writeGCSError(w http.ResponseWriter, code int, msg string) {
	type gcsErr struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	body, _ := json.Marshal(struct {
		Error gcsErr `json:"error"`
	}{gcsErr{code, msg}})
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(code)
	w.Write(body)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func (p *proxy) snapshot() statsJSON {
	s := statsJSON{
		Requests: make(map[string]int64, len(kinds)),
		Faults: faultsJSON{
			Error:     p.stats.errors.Load(),
			Stall:     p.stats.stalls.Load(),
			Reset:     p.stats.resets.Load(),
			Saturated: p.stats.saturated.Load(),
		},
		DelayMsTotal: toMs(time.Duration(p.stats.delayNanos.Load())),
		InFlight:     p.stats.inFlight.Load(),
		MaxInFlight:  p.maxInFlight,
		Config:       p.cfg.Load().json(),
	}
	for k, c := range p.stats.requests {
		s.Requests[k] = c.Load()
	}
	return s
}

func (p *proxy) handleStats(w http.ResponseWriter, _ *http.Request) { writeJSON(w, p.snapshot()) }

func (p *proxy) handleReset(w http.ResponseWriter, _ *http.Request) {
	for _, c := range p.stats.requests {
		c.Store(0)
	}
	for _, c := range []*atomic.Int64{&p.stats.errors, &p.stats.stalls, &p.stats.resets, &p.stats.saturated, &p.stats.delayNanos} {
		c.Store(0)
	}
	w.WriteHeader(http.StatusNoContent)
}

func (p *proxy) handleGetConfig(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, p.cfg.Load().json())
}

func (p *proxy) handlePutConfig(w http.ResponseWriter, r *http.Request) {
	var patch configPatch
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields() // a typo must not silently do nothing
	if err := dec.Decode(&patch); err != nil {
		http.Error(w, "invalid config body: "+oneLine(err.Error()), http.StatusBadRequest)
		return
	}
	p.cfgMu.Lock()
	next, err := p.cfg.Load().apply(patch)
	if err == nil {
		p.cfg.Store(&next)
	}
	p.cfgMu.Unlock()
	if err != nil {
		var fe *fieldError
		if !errors.As(err, &fe) {
			fe = &fieldError{"config", err.Error()}
		}
		http.Error(w, "invalid "+oneLine(fe.Error()), http.StatusBadRequest)
		return
	}
	log.Printf("config changed: %s", next)
	writeJSON(w, next.json())
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }
