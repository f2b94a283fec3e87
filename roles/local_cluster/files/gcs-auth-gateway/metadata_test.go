package main

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const gsa = "reader@test-project.iam.gserviceaccount.com"

var pods = staticResolver{
	"10.244.0.10": {Namespace: "wi-a", Pod: "plain", KSA: "reader"},
	"10.244.0.11": {Namespace: "wi-a", Pod: "annotated", KSA: "bound", GSA: gsa},
	"10.244.0.12": {Namespace: "wi-a", Pod: "escalating", KSA: "sneaky", GSA: "admin@test-project.iam.gserviceaccount.com"},
	"10.244.0.13": {Namespace: "wi-a", Pod: "odd", KSA: "odd", GSA: "not-an-email"},
}

type failingResolver struct{}

func (failingResolver) identify(context.Context, string) (caller, error) {
	return caller{}, errors.New("connection refused")
}

func metadataGet(h http.Handler, from, target string, header map[string]string) *httptest.ResponseRecorder {
	r := httptest.NewRequest("GET", target, nil)
	r.RemoteAddr = from + ":40000"
	for k, v := range header {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

var google = map[string]string{"Metadata-Flavor": "Google"}

func TestMetadataPaths(t *testing.T) {
	f := newFixtureWith(t, t.TempDir(), ownedProject)
	m := &metadataServer{g: f.g, pods: pods}
	const sa = "/computeMetadata/v1/instance/service-accounts/"
	plain := "test-project.svc.id.goog"
	cases := []struct {
		name, from, path string
		header           map[string]string
		code             int
		ctype, body      string // body: the exact text, or a substring for JSON
	}{
		{"ping", "10.244.0.10", "/", google, 200, "application/text", "computeMetadata/\n"},
		{"ping from anywhere", "10.254.254.1", "/", google, 200, "application/text", "computeMetadata/\n"},
		{"no header", "10.244.0.10", "/", nil, 403, "application/text", ""},
		{"wrong header", "10.244.0.10", sa + "default/token", map[string]string{"Metadata-Flavor": "google"}, 403, "", ""},
		{"through a proxy", "10.244.0.10", sa + "default/token",
			map[string]string{"Metadata-Flavor": "Google", "X-Forwarded-For": "10.244.0.99"}, 403, "", ""},
		{"project id", "10.244.0.10", "/computeMetadata/v1/project/project-id", google, 200, "application/text", "test-project"},
		{"project number", "10.244.0.10", "/computeMetadata/v1/project/numeric-project-id", google, 200, "", "123456789012"},
		{"universe domain", "10.244.0.10", "/computeMetadata/v1/universe/universe-domain", google, 404, "", ""},
		{"machine type", "10.244.0.10", "/computeMetadata/v1/instance/machine-type", google, 404, "", ""},
		{"accounts", "10.244.0.10", sa, google, 200, "", "default/\n" + plain + "/\n"},
		{"account dir", "10.244.0.10", sa + "default/", google, 200, "", "aliases\nemail\nidentity\nscopes\ntoken\n"},
		{"recursive", "10.244.0.10", sa + "default/?recursive=true", google, 200, "application/json", `"email":"` + plain + `"`},
		{"recursive scopes", "10.244.0.10", sa + "default/?recursive=true", google, 200, "application/json",
			`"scopes":["https://www.googleapis.com/auth/cloud-platform"`},
		{"email (plain KSA)", "10.244.0.10", sa + "default/email", google, 200, "application/text", plain},
		{"email (annotated KSA)", "10.244.0.11", sa + "default/email", google, 200, "application/text", gsa},
		{"account by email", "10.244.0.11", sa + gsa + "/email", google, 200, "", gsa},
		{"another account", "10.244.0.11", sa + "other@x.iam.gserviceaccount.com/token", google, 404, "", ""},
		{"scopes", "10.244.0.10", sa + "default/scopes", google, 200, "",
			"https://www.googleapis.com/auth/cloud-platform\nhttps://www.googleapis.com/auth/userinfo.email\n"},
		{"token", "10.244.0.10", sa + "default/token", google, 200, "application/json", `"token_type":"Bearer"`},
		{"token with scopes", "10.244.0.10", sa + "default/token?scopes=https://www.googleapis.com/auth/devstorage.full_control",
			google, 200, "application/json", `"expires_in":3600`},
		{"identity token", "10.244.0.10", sa + "default/identity?audience=x", google, 404, "", ""},
		{"unknown pod", "10.244.0.99", sa + "default/token", google, 403, "", ""},
		{"the host", "10.254.254.1", sa + "default/email", google, 403, "", ""},
		{"GSA not granted to the KSA", "10.244.0.11", sa + "default/token", google, 403, "", ""},
		{"GSA of a project owner", "10.244.0.12", sa + "default/token", google, 403, "", ""},
		{"GSA that is no address", "10.244.0.13", sa + "default/token", google, 403, "", ""},
	}
	for _, c := range cases {
		w := metadataGet(m, c.from, c.path, c.header)
		if w.Code != c.code {
			t.Errorf("%s: got %d %q, want %d", c.name, w.Code, w.Body.String(), c.code)
			continue
		}
		if c.code != 403 && w.Header().Get("Metadata-Flavor") != "Google" {
			t.Errorf("%s: no Metadata-Flavor: Google in the answer", c.name)
		}
		if c.code == 200 && w.Header().Get("Content-Type") == "" {
			t.Errorf("%s: no Content-Type (google-auth needs one)", c.name)
		}
		if c.ctype != "" && w.Header().Get("Content-Type") != c.ctype {
			t.Errorf("%s: Content-Type %q, want %q", c.name, w.Header().Get("Content-Type"), c.ctype)
		}
		got := w.Body.String()
		if c.ctype == "application/json" {
			if !strings.Contains(got, c.body) {
				t.Errorf("%s: body %q lacks %q", c.name, got, c.body)
			}
		} else if c.body != "" && got != c.body {
			t.Errorf("%s: body %q, want %q", c.name, got, c.body)
		}
	}
	if w := metadataGet(&metadataServer{g: f.g, pods: failingResolver{}}, "10.244.0.10", sa+"default/token", google); w.Code != 503 {
		t.Errorf("API server down: got %d, want 503 (retried by clients)", w.Code)
	}
}

// A token from the metadata server is the gateway's own and stands for the pod's principal.
func TestMetadataTokensMapToPrincipals(t *testing.T) {
	f := newFixtureWith(t, t.TempDir(), ownedProject)
	m := &metadataServer{g: f.g, pods: pods}
	token := func(from string) string {
		w := metadataGet(m, from, "/computeMetadata/v1/instance/service-accounts/default/token", google)
		var body struct {
			AccessToken string `json:"access_token"`
			ExpiresIn   int    `json:"expires_in"`
		}
		if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &body) != nil || body.ExpiresIn <= 0 {
			t.Fatalf("token from %s: %d %s", from, w.Code, w.Body)
		}
		return body.AccessToken
	}
	// The annotated KSA acts as the GSA once the GSA's policy lets it (roles/iam.workloadIdentityUser).
	if code, body := f.saPolicy(admin, gsa, "setIamPolicy", map[string]any{"policy": map[string]any{"bindings": []binding{
		{Role: "roles/iam.workloadIdentityUser", Members: []string{"serviceAccount:test-project.svc.id.goog[wi-a/bound]"}},
	}}}); code != 200 {
		t.Fatalf("setIamPolicy on the GSA: %d %v", code, body)
	}
	for from, want := range map[string]string{"10.244.0.10": ksa, "10.244.0.11": "serviceAccount:" + gsa} {
		if p, err := f.g.checkBearer(token(from)); err != nil || p != want {
			t.Errorf("token of %s: principal %q %v, want %q", from, p, err, want)
		}
	}
	// And the bucket's IAM policy decides what it may do: 403 before the binding, 200 after.
	read := func(tok string) int {
		req, _ := http.NewRequest("GET", f.gw.URL+"/storage/v1/b/bkt/o/obj?alt=media", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	plain, bound := token("10.244.0.10"), token("10.244.0.11")
	if a, b := read(plain), read(bound); a != 403 || b != 403 {
		t.Fatalf("before the binding: %d %d, want 403 403", a, b)
	}
	f.setPolicy(admin, "bkt", []binding{{Role: "roles/storage.objectViewer", Members: []string{ksa, "serviceAccount:" + gsa}}}, "")
	if a, b := read(plain), read(bound); a != 200 || b != 200 {
		t.Fatalf("after the binding: %d %d, want 200 200", a, b)
	}
}

// The Kubernetes lookup: the field selector, the gateway's token, hostNetwork and finished pods skipped,
// the KSA's annotation read.
func TestKubeResolver(t *testing.T) {
	type pod struct {
		ns, name, sa, phase string
		hostNetwork         bool
	}
	byIP := map[string][]pod{
		"10.244.0.10":  {{"wi-a", "done", "old", "Succeeded", false}, {"wi-a", "web", "reader", "Running", false}},
		"10.244.0.11":  {{"wi-a", "bound", "bound", "Running", false}},
		"10.244.0.12":  {{"wi-a", "nosa", "", "Running", false}},
		"10.244.0.13":  {{"wi-a", "ghost", "gone", "Running", false}},
		"10.254.254.2": {{"kube-system", "h1", "a", "Running", true}, {"kube-system", "h2", "b", "Running", true}},
		"10.244.0.14":  {{"wi-a", "twin1", "a", "Running", false}, {"wi-a", "twin2", "a", "Pending", false}},
	}
	annotations := map[string]map[string]string{
		"wi-a/reader":  {},
		"wi-a/bound":   {gsaAnnotation: " " + gsa + " "},
		"wi-a/default": nil,
	}
	var auths []string
	api := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auths = append(auths, r.Header.Get("Authorization"))
		switch {
		case r.URL.Path == "/api/v1/pods":
			ip, ok := strings.CutPrefix(r.URL.Query().Get("fieldSelector"), "status.podIP=")
			if !ok {
				http.Error(w, "want a status.podIP field selector", 400)
				return
			}
			items := []map[string]any{}
			for _, p := range byIP[ip] {
				items = append(items, map[string]any{
					"metadata": map[string]any{"name": p.name, "namespace": p.ns},
					"spec":     map[string]any{"serviceAccountName": p.sa, "hostNetwork": p.hostNetwork},
					"status":   map[string]any{"phase": p.phase, "podIP": ip},
				})
			}
			json.NewEncoder(w).Encode(map[string]any{"kind": "PodList", "items": items})
		case strings.HasPrefix(r.URL.Path, "/api/v1/namespaces/"):
			parts := strings.Split(r.URL.Path, "/") // /api/v1/namespaces/NS/serviceaccounts/NAME
			a, ok := annotations[parts[4]+"/"+parts[6]]
			if !ok {
				http.Error(w, `{"kind":"Status","code":404}`, 404)
				return
			}
			json.NewEncoder(w).Encode(map[string]any{"metadata": map[string]any{"annotations": a}})
		default:
			http.NotFound(w, r)
		}
	}))
	defer api.Close()
	dir := t.TempDir()
	tokenFile, caFile := filepath.Join(dir, "token"), filepath.Join(dir, "ca.crt")
	os.WriteFile(tokenFile, []byte("gateway-token\n"), 0o600)
	os.WriteFile(caFile, pemCert(api), 0o600)
	k, err := newKubeResolver(api.URL, tokenFile, caFile)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		ip      string
		want    caller
		unknown bool
	}{
		{"10.244.0.10", caller{Namespace: "wi-a", Pod: "web", KSA: "reader"}, false},
		{"10.244.0.11", caller{Namespace: "wi-a", Pod: "bound", KSA: "bound", GSA: gsa}, false},
		{"10.244.0.12", caller{Namespace: "wi-a", Pod: "nosa", KSA: "default"}, false},
		{"10.244.0.13", caller{}, true},  // its ServiceAccount is gone
		{"10.254.254.2", caller{}, true}, // host network: never identified
		{"10.244.0.14", caller{}, true},  // two pods claim the address
		{"10.244.0.99", caller{}, true},
	}
	for _, c := range cases {
		got, err := k.identify(context.Background(), c.ip)
		if c.unknown {
			if !errors.Is(err, errUnknownCaller) {
				t.Errorf("%s: got %+v %v, want an unknown caller", c.ip, got, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s: got %+v %v, want %+v", c.ip, got, err, c.want)
		}
	}
	for _, a := range auths {
		if a != "Bearer gateway-token" {
			t.Fatalf("the API server saw Authorization %q", a)
		}
	}
	// An API server that is down is no unknown caller: the metadata server answers 503 then.
	api.Close()
	if _, err := k.identify(context.Background(), "10.244.0.10"); err == nil || errors.Is(err, errUnknownCaller) {
		t.Fatalf("API down: %v", err)
	}
	// The in-cluster address comes from the kubelet's variables.
	t.Setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
	t.Setenv("KUBERNETES_SERVICE_PORT", "443")
	if k, err := newKubeResolver("", tokenFile, ""); err != nil || k.api != "https://10.96.0.1:443" {
		t.Fatalf("in-cluster: %v %v", k, err)
	}
}

func pemCert(s *httptest.Server) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw})
}

func (f *fixture) saPolicy(who, email, verb string, body any) (int, map[string]any) {
	return f.do(who, "POST", "/v1/projects/-/serviceAccounts/"+email+":"+verb, body)
}

// Who may act as a GSA: the KSAs its policy grants roles/iam.workloadIdentityUser (or TokenCreator), in any
// of the forms a member can name them; only project owners read and change the policy.
func TestServiceAccountIAM(t *testing.T) {
	f := newFixtureWith(t, t.TempDir(), ownedProject)
	if code, got := f.saPolicy(admin, gsa, "getIamPolicy", nil); code != 200 || got["etag"] != "CAE=" ||
		len(got["bindings"].([]any)) != 0 {
		t.Fatalf("default: %d %v", code, got)
	}
	set := func(role string, members ...string) map[string]any {
		return map[string]any{"policy": map[string]any{"bindings": []binding{{Role: role, Members: members}}}}
	}
	cases := []struct {
		name, who, verb, email string
		body                   any
		want                   int
	}{
		{"anonymous", anonymous, "getIamPolicy", gsa, nil, 401},
		{"not an owner", reader, "setIamPolicy", gsa, set("roles/iam.workloadIdentityUser", ksa), 403},
		{"a pod's own principal", ksa, "setIamPolicy", gsa, set("roles/iam.workloadIdentityUser", ksa), 403},
		{"unknown role", admin, "setIamPolicy", gsa, set("roles/storage.admin", ksa), 400},
		{"bad member", admin, "setIamPolicy", gsa, set("roles/iam.workloadIdentityUser", "bob"), 400},
		{"bad email", admin, "getIamPolicy", "nobody", nil, 400},
		{"stale etag", admin, "setIamPolicy", gsa, map[string]any{"policy": map[string]any{"etag": "CAU="}}, 409},
	}
	for _, c := range cases {
		if code, body := f.saPolicy(c.who, c.email, c.verb, c.body); code != c.want {
			t.Errorf("%s: got %d %v, want %d", c.name, code, body, c.want)
		}
	}
	grants := []struct {
		name, role, member string
		may                bool
	}{
		{"nothing", "roles/iam.serviceAccountUser", ksa, false},
		{"principal", "roles/iam.workloadIdentityUser", ksa, true},
		{"legacy member", "roles/iam.workloadIdentityUser", "serviceAccount:test-project.svc.id.goog[wi-a/reader]", true},
		{"namespace set", "roles/iam.workloadIdentityUser", strings.Replace(pool, "principal://", "principalSet://", 1) +
			"/namespace/wi-a", true},
		{"token creator", "roles/iam.serviceAccountTokenCreator", ksa, true},
		{"another KSA", "roles/iam.workloadIdentityUser", ksaB, false},
		{"allUsers", "roles/iam.workloadIdentityUser", "allUsers", false},
	}
	for _, c := range grants {
		if code, body := f.saPolicy(admin, gsa, "setIamPolicy", set(c.role, c.member)); code != 200 {
			t.Fatalf("%s: set: %d %v", c.name, code, body)
		}
		if may, err := f.g.mayImpersonate("wi-a", "reader", gsa); err != nil || may != c.may {
			t.Errorf("%s: may impersonate %v %v, want %v", c.name, may, err, c.may)
		}
	}
	// The project's owner is never impersonated, whatever its policy says.
	owner := strings.TrimPrefix(admin, "serviceAccount:")
	f.saPolicy(admin, owner, "setIamPolicy", set("roles/iam.workloadIdentityUser", ksa))
	if may, _ := f.g.mayImpersonate("wi-a", "reader", owner); may {
		t.Error("a KSA may impersonate the project owner")
	}
	// Policies survive a restart.
	g2 := newFixtureWith(t, f.dir, ownedProject)
	if code, got := g2.saPolicy(admin, gsa, "getIamPolicy", nil); code != 200 || got["etag"] == "CAE=" {
		t.Fatalf("after restart: %d %v", code, got)
	}
}
