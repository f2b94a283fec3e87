// gcs-auth-gateway fronts a GCS emulator (fake-gcs-server) so that clients holding a real
// Google service-account key, or running as a Kubernetes ServiceAccount (Workload Identity), work
// offline, and nothing reaches the emulator unless the caller's principal may do it.
//
//   - POST /v1/projects/{p}/serviceAccounts/{email}/keys:upload registers a key's public
//     certificate, the way IAM takes a user-managed key (keys are kept under -data-dir);
//   - POST /token is the key's token_uri: it verifies the RS256 JWT assertion of the
//     OAuth 2.0 JWT-bearer grant against the registered keys and answers an access token,
//     401 otherwise;
//   - GET/PUT /storage/v1/b/{bucket}/iam and .../iam/testPermissions serve bucket IAM policies
//     (kept under -data-dir);
//   - every other request is proxied to the emulator with its Host header intact (fake-gcs-server
//     matches XML reads on it) when the caller holds the permissions it needs: 401 without a valid
//     token, 403 with a token whose principal lacks one;
//   - with -metadata-listen, a second listener is a GKE-compatible metadata server: it identifies
//     the calling pod by its source address through the Kubernetes API and answers tokens for the
//     pod's ServiceAccount (see metadata.go).
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
	"strings"
	"syscall"
	"time"
)

func main() {
	listen := flag.String("listen", ":4443", "address to listen on")
	upstream := flag.String("upstream", "http://127.0.0.1:4444", "the GCS emulator")
	dataDir := flag.String("data-dir", "/data", "where registered keys, bucket policies and the token secret are kept")
	tokenTTL := flag.Duration("token-ttl", time.Hour, "lifetime of access tokens")
	skew := flag.Duration("clock-skew", 5*time.Minute, "tolerated clock skew of assertions")
	var proj project
	flag.StringVar(&proj.ID, "project-id", "gcsfront-local", "the project's id (Workload Identity pool PROJECT.svc.id.goog)")
	flag.StringVar(&proj.Number, "project-number", "100000000001", "the project's number")
	flag.Func("project-owner", "a member (serviceAccount:EMAIL) holding roles/storage.admin on the project; repeatable. "+
		"None given: every service account with a registered key", func(s string) error {
		if !memberForm.MatchString(s) {
			return errors.New("not an IAM member: " + s)
		}
		proj.Owners = append(proj.Owners, s)
		return nil
	})
	metaListen := flag.String("metadata-listen", "", "address of the metadata server (empty: none)")
	kubeAPI := flag.String("kube-api", "", "Kubernetes API server (empty: in-cluster, KUBERNETES_SERVICE_HOST/PORT)")
	kubeToken := flag.String("kube-token-file", "/var/run/secrets/kubernetes.io/serviceaccount/token", "the gateway's ServiceAccount token")
	kubeCA := flag.String("kube-ca-file", "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt", "the API server's CA")
	flag.Parse()

	target, err := url.Parse(*upstream)
	if err != nil {
		log.Fatalf("gcs-auth-gateway: bad -upstream: %v", err)
	}
	g, err := newGateway(*dataDir, *tokenTTL, *skew, target, proj)
	if err != nil {
		log.Fatalf("gcs-auth-gateway: %v", err)
	}
	servers := []*http.Server{{Addr: *listen, Handler: g, ReadHeaderTimeout: 10 * time.Second}}
	if *metaListen != "" {
		pods, err := newKubeResolver(*kubeAPI, *kubeToken, *kubeCA)
		if err != nil {
			log.Fatalf("gcs-auth-gateway: metadata server: %v", err)
		}
		servers = append(servers, &http.Server{Addr: *metaListen, Handler: &metadataServer{g: g, pods: pods},
			ReadHeaderTimeout: 10 * time.Second})
	}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		<-sig
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, srv := range servers {
			srv.Shutdown(ctx)
		}
	}()
	owners := "every service account with a registered key"
	if proj.Owners != nil {
		owners = strings.Join(proj.Owners, ",")
	}
	log.Printf("gcs-auth-gateway listening on %s, upstream %s, data %s, project %s (%s), owners %s, metadata server %q",
		*listen, *upstream, *dataDir, proj.ID, proj.Number, owners, *metaListen)
	errs := make(chan error, len(servers))
	for _, srv := range servers {
		go func(srv *http.Server) { errs <- srv.ListenAndServe() }(srv)
	}
	for range servers {
		if err := <-errs; !errors.Is(err, http.ErrServerClosed) {
			log.Fatalf("gcs-auth-gateway: %v", err)
		}
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
