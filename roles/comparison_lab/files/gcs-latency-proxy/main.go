// Command gcs-latency-proxy is benchmark test tooling: a reverse proxy in
// front of a GCS emulator that adds WAN-like latency and injects faults.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

const shutdownTimeout = 5 * time.Second

// flagForField maps config JSON names to flag names for error messages.
var flagForField = map[string]string{
	"latency_ms": "latency", "jitter_ms": "jitter", "tail_prob": "tail-prob",
	"tail_min_ms": "tail-min", "tail_max_ms": "tail-max", "error_rate": "error-rate",
	"stall_rate": "stall-rate", "stall_ms": "stall", "reset_rate": "reset-rate",
}

type settings struct {
	listen string
	options
}

func main() {
	s, err := parseFlags(os.Args[1:], os.LookupEnv)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gcs-latency-proxy:", err)
		os.Exit(2)
	}
	if err := run(s); err != nil {
		fmt.Fprintln(os.Stderr, "gcs-latency-proxy:", err)
		os.Exit(1)
	}
}

// envName gives the environment variable that sets a flag's default,
// e.g. tail-prob -> GCS_PROXY_TAIL_PROB.
func envName(flagName string) string {
	return "GCS_PROXY_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func parseFlags(args []string, lookupEnv func(string) (string, bool)) (settings, error) {
	var (
		s        settings
		upstream string
		c        config
	)
	fs := flag.NewFlagSet("gcs-latency-proxy", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // we print one error line ourselves
	fs.StringVar(&s.listen, "listen", "127.0.0.1:4444", "address to listen on")
	fs.StringVar(&upstream, "upstream", "", "upstream GCS endpoint, http:// or https:// URL (required)")
	fs.DurationVar(&c.Latency, "latency", 30*time.Millisecond, "base delay added to each proxied request")
	fs.DurationVar(&c.Jitter, "jitter", 10*time.Millisecond, "uniform jitter (+/-) around -latency")
	fs.Float64Var(&c.TailProb, "tail-prob", 0.01, "probability of a tail delay instead of latency+-jitter")
	fs.DurationVar(&c.TailMin, "tail-min", 150*time.Millisecond, "minimum tail delay")
	fs.DurationVar(&c.TailMax, "tail-max", 300*time.Millisecond, "maximum tail delay")
	fs.Float64Var(&c.ErrorRate, "error-rate", 0, "probability of answering 503 without contacting upstream")
	fs.Float64Var(&c.StallRate, "stall-rate", 0, "probability of holding a request for -stall before proxying")
	fs.DurationVar(&c.Stall, "stall", 2*time.Second, "how long a stalled request is held")
	fs.Float64Var(&c.ResetRate, "reset-rate", 0, "probability of closing the client connection with a TCP RST")
	fs.IntVar(&s.maxInFlight, "max-in-flight", 256, "concurrent proxied requests before answering 503")
	fs.Uint64Var(&s.seed, "seed", 0, "random seed (0 = seed from the clock)")
	fs.BoolVar(&s.verbose, "v", false, "log every proxied request")

	// Environment variables set defaults; command-line flags, parsed after, win.
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		name := envName(f.Name)
		if v, ok := lookupEnv(name); ok && envErr == nil {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = fmt.Errorf("invalid value %q for flag -%s (from %s): %v", v, f.Name, name, err)
			}
		}
	})
	if envErr != nil {
		return s, envErr
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(os.Stderr)
			fmt.Fprintln(os.Stderr, "usage: gcs-latency-proxy -upstream http://host:port [flags]\n(every flag's default can be set via GCS_PROXY_<FLAG>, e.g. GCS_PROXY_TAIL_PROB)")
			fs.PrintDefaults()
		}
		return s, err
	}
	if fs.NArg() > 0 {
		return s, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}

	u, err := url.Parse(upstream)
	switch {
	case upstream == "":
		return s, errors.New("flag -upstream is required (e.g. -upstream http://127.0.0.1:8080)")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return s, fmt.Errorf("invalid value %q for flag -upstream: want an http:// or https:// URL with a host", upstream)
	}
	s.upstream = u
	if s.maxInFlight < 1 {
		return s, fmt.Errorf("invalid value %d for flag -max-in-flight: must be >= 1", s.maxInFlight)
	}
	if err := c.validate(); err != nil {
		var fe *fieldError
		if errors.As(err, &fe) {
			return s, fmt.Errorf("invalid flag -%s: %s", flagForField[fe.field], fe.msg)
		}
		return s, err
	}
	s.cfg = c
	return s, nil
}

func run(s settings) error {
	if s.seed == 0 {
		s.seed = uint64(time.Now().UnixNano())
	}
	ln, err := net.Listen("tcp", s.listen)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           newProxy(s.options),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
	log.Printf("gcs-latency-proxy listening on %s, upstream %s, %s max-in-flight=%d seed=%d",
		ln.Addr(), s.upstream, s.cfg, s.maxInFlight, s.seed)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	stop() // a second signal terminates immediately

	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		// Delayed or stalled requests outlived the grace period: drop them.
		srv.Close()
		log.Printf("forced close after %s: %v", shutdownTimeout, err)
		return nil
	}
	log.Printf("shut down cleanly")
	return nil
}
