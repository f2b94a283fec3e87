// gcs-auth-gateway fronts a GCS emulator (fake-gcs-server) so that clients holding a real
// Google service-account key work offline, and nothing reaches the emulator without a token.
//
//   - POST /v1/projects/{p}/serviceAccounts/{email}/keys:upload registers a key's public
//     certificate, the way IAM takes a user-managed key (keys are kept under -data-dir);
//   - POST /token is the key's token_uri: it verifies the RS256 JWT assertion of the
//     OAuth 2.0 JWT-bearer grant against the registered keys and answers an access token,
//     401 otherwise;
//   - every other request needs a valid Bearer token and is proxied to the emulator with
//     its Host header intact (fake-gcs-server matches XML reads on it).
//
// Access tokens are HMAC-signed and stateless, so they survive a restart of the gateway.
package main

import (
	"context"
	"errors"
	"flag"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	listen := flag.String("listen", ":4443", "address to listen on")
	upstream := flag.String("upstream", "http://127.0.0.1:4444", "the GCS emulator")
	dataDir := flag.String("data-dir", "/data", "where registered keys and the token secret are kept")
	tokenTTL := flag.Duration("token-ttl", time.Hour, "lifetime of access tokens")
	skew := flag.Duration("clock-skew", 5*time.Minute, "tolerated clock skew of assertions")
	flag.Parse()

	target, err := url.Parse(*upstream)
	if err != nil {
		log.Fatalf("gcs-auth-gateway: bad -upstream: %v", err)
	}
	g, err := newGateway(*dataDir, *tokenTTL, *skew, target)
	if err != nil {
		log.Fatalf("gcs-auth-gateway: %v", err)
	}
	srv := &http.Server{Addr: *listen, Handler: g, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		<-sig
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	log.Printf("gcs-auth-gateway listening on %s, upstream %s, data %s", *listen, *upstream, *dataDir)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		log.Fatalf("gcs-auth-gateway: %v", err)
	}
}

func newProxy(target *url.URL) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = r.In.Host // fake-gcs-server matches XML reads on the Host header
			r.Out.Header.Del("Authorization")
		},
		FlushInterval: -1,
	}
}
