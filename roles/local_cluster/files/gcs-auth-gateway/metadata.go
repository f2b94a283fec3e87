package main

// A GKE-compatible metadata server (Workload Identity): it serves the paths gcsfuse and google-auth
// ask (see the role README), identifies the calling pod by its source address, and answers tokens for
// the pod's Kubernetes ServiceAccount: the Workload Identity Federation principal, or the Google
// service account named by the KSA's iam.gke.io/gcp-service-account annotation. Tokens are the
// gateway's own, so the gateway maps them back to that principal when it decides bucket IAM.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"regexp"
	"strings"
	"time"
)

// gsaAnnotation names the Google service account a KSA acts as (GKE's annotation).
const gsaAnnotation = "iam.gke.io/gcp-service-account"

var gsaForm = regexp.MustCompile(`^[a-z][a-z0-9-]{4,28}[a-z0-9]@[a-z0-9.-]+\.iam\.gserviceaccount\.com$`)

// scopes are what GKE's metadata server lists for a Workload Identity pod.
var scopes = []string{"https://www.googleapis.com/auth/cloud-platform", "https://www.googleapis.com/auth/userinfo.email"}

// caller is a pod found by its address.
type caller struct {
	Namespace, Pod, KSA string
	GSA                 string // the annotation's value, "" without one
}

// errUnknownCaller: no (single, running) pod has the source address.
var errUnknownCaller = errors.New("no pod has this address")

// podResolver finds the pod behind a source address.
type podResolver interface {
	identify(ctx context.Context, ip string) (caller, error)
}

type metadataServer struct {
	g    *gateway
	pods podResolver
}

func (m *metadataServer) principal(c caller) (principal, email string) {
	if c.GSA != "" {
		return "serviceAccount:" + c.GSA, c.GSA
	}
	return m.g.ksaPrincipal(c.Namespace, c.KSA), m.g.project.ID + ".svc.id.goog"
}

func (m *metadataServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &recorder{ResponseWriter: w, status: 200}
	who := m.serve(rec, r)
	log.Printf("metadata %s %s %s %d %s%s", r.RemoteAddr, r.Method, r.URL.Path, rec.status,
		time.Since(start).Round(time.Millisecond), who)
}

func text(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "application/text")
	w.WriteHeader(code)
	w.Write([]byte(body))
}

func notFound(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/html; charset=UTF-8")
	w.WriteHeader(http.StatusNotFound)
	w.Write([]byte("Not Found\n"))
}

// serve answers one request; it returns what the log line should say about the caller.
func (m *metadataServer) serve(w *recorder, r *http.Request) string {
	w.Header().Set("Server", "GKE Metadata Server")
	if r.URL.Path == "/healthz" {
		text(w, http.StatusOK, "ok\n")
		return ""
	}
	// Like Compute Engine's: a request relayed by a proxy is refused, and the header proves the
	// caller meant to talk to the metadata server (no request forgery through a plain GET).
	if r.Header.Get("X-Forwarded-For") != "" {
		text(w, http.StatusForbidden, "Requests through a proxy (X-Forwarded-For) are not accepted.\n")
		return ""
	}
	if r.Header.Get("Metadata-Flavor") != "Google" {
		text(w, http.StatusForbidden, "Your client does not have permission to get URL "+r.URL.Path+
			" from this server. Missing Metadata-Flavor:Google header.\n")
		return ""
	}
	w.Header().Set("Metadata-Flavor", "Google")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		text(w, http.StatusMethodNotAllowed, "Method not allowed\n")
		return ""
	}
	path := r.URL.Path
	switch path {
	case "/":
		text(w, http.StatusOK, "computeMetadata/\n")
		return ""
	case "/computeMetadata/":
		text(w, http.StatusOK, "v1/\n")
		return ""
	case "/computeMetadata/v1/":
		text(w, http.StatusOK, "instance/\nproject/\n")
		return ""
	case "/computeMetadata/v1/project/":
		text(w, http.StatusOK, "numeric-project-id\nproject-id\n")
		return ""
	case "/computeMetadata/v1/project/project-id":
		text(w, http.StatusOK, m.g.project.ID)
		return ""
	case "/computeMetadata/v1/project/numeric-project-id":
		text(w, http.StatusOK, m.g.project.Number)
		return ""
	case "/computeMetadata/v1/instance/":
		text(w, http.StatusOK, "service-accounts/\n")
		return ""
	}
	rest, ok := strings.CutPrefix(path, "/computeMetadata/v1/instance/service-accounts/")
	if !ok {
		notFound(w) // universe/universe-domain included: the default universe, googleapis.com
		return ""
	}

	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	c, err := m.pods.identify(r.Context(), host)
	if errors.Is(err, errUnknownCaller) {
		w.reason = " (" + err.Error() + ")"
		text(w, http.StatusForbidden, fmt.Sprintf("No running pod has the address %s: the metadata server "+
			"answers pods only.\n", host))
		return " " + host + ": " + err.Error()
	}
	if err != nil {
		// The API server is down or slow: 503, which gcsfuse and google-auth retry.
		text(w, http.StatusServiceUnavailable, "Cannot look up the calling pod: "+err.Error()+"\n")
		return " " + host + ": " + err.Error()
	}
	principal, email := m.principal(c)
	who := fmt.Sprintf(" %s/%s sa=%s as %s", c.Namespace, c.Pod, c.KSA, principal)

	if rest == "" {
		text(w, http.StatusOK, "default/\n"+email+"/\n")
		return who
	}
	account, leaf, _ := strings.Cut(rest, "/")
	if account != "default" && account != email {
		notFound(w)
		return who
	}
	switch leaf {
	case "":
		if r.URL.Query().Get("recursive") == "true" {
			writeJSON(w, http.StatusOK, map[string]any{"aliases": []string{"default"}, "email": email, "scopes": scopes})
		} else {
			text(w, http.StatusOK, "aliases\nemail\nidentity\nscopes\ntoken\n")
		}
	case "aliases":
		text(w, http.StatusOK, "default\n")
	case "email":
		text(w, http.StatusOK, email)
	case "scopes":
		text(w, http.StatusOK, strings.Join(scopes, "\n")+"\n")
	case "token":
		if c.GSA != "" {
			// GKE answers so when the GSA's policy does not grant the KSA roles/iam.workloadIdentityUser.
			ok, err := m.g.mayImpersonate(c.Namespace, c.KSA, c.GSA)
			if err != nil {
				text(w, http.StatusServiceUnavailable, "Cannot read the service account's policy: "+err.Error()+"\n")
				return who
			}
			if !ok {
				w.reason = " (may not impersonate " + c.GSA + ")"
				text(w, http.StatusForbidden, "Unable to generate access token; IAM returned 403 Forbidden: "+
					"Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).\n"+
					"This error could be caused by a missing IAM policy binding on the target IAM service account.\n")
				return who
			}
		}
		exp := m.g.now().Add(m.g.ttl)
		writeJSON(w, http.StatusOK, map[string]any{
			"access_token": m.g.mint(principal, exp),
			"expires_in":   int(m.g.ttl / time.Second),
			"token_type":   "Bearer",
		})
	default:
		notFound(w) // identity (ID tokens) is not served
	}
	return who
}

// staticResolver is a fixed address book, for tests and for running without a cluster.
type staticResolver map[string]caller

func (s staticResolver) identify(_ context.Context, ip string) (caller, error) {
	if c, ok := s[ip]; ok {
		return c, nil
	}
	return caller{}, errUnknownCaller
}

// jsonDecode reads a JSON body into v.
func jsonDecode(resp *http.Response, v any) error {
	return json.NewDecoder(http.MaxBytesReader(nil, resp.Body, 8<<20)).Decode(v)
}
