package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const (
	admin  = "serviceAccount:admin@test-project.iam.gserviceaccount.com"
	reader = "serviceAccount:reader@test-project.iam.gserviceaccount.com"
	writer = "serviceAccount:writer@test-project.iam.gserviceaccount.com"
	nobody = "serviceAccount:nobody@test-project.iam.gserviceaccount.com"
	pool   = "principal://iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/test-project.svc.id.goog"
	ksa    = pool + "/subject/ns/wi-a/sa/reader"
	ksaB   = pool + "/subject/ns/wi-b/sa/other"
)

var ownedProject = project{ID: "test-project", Number: "123456789012", Owners: []string{admin}}

func (f *fixture) tokenFor(principal string) string {
	if principal == anonymous {
		return ""
	}
	return f.g.mint(principal, time.Now().Add(time.Hour))
}

// do sends a request as principal and returns the status and the decoded JSON body (if any).
func (f *fixture) do(principal, method, path string, body any) (int, map[string]any) {
	f.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, f.gw.URL+path, rd)
	if tok := f.tokenFor(principal); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	data, _ := io.ReadAll(resp.Body)
	json.Unmarshal(data, &out)
	return resp.StatusCode, out
}

func (f *fixture) setPolicy(principal, bucket string, bindings []binding, etag string) (int, map[string]any) {
	return f.do(principal, "PUT", "/storage/v1/b/"+bucket+"/iam", map[string]any{"bindings": bindings, "etag": etag})
}

func TestRequiredPermissions(t *testing.T) {
	cases := []struct {
		method, path string
		want         []need
	}{
		{"GET", "/storage/v1/b?project=p", []need{{"storage.buckets.list", ""}}},
		{"POST", "/storage/v1/b?project=p", []need{{"storage.buckets.create", ""}}},
		{"GET", "/storage/v1/b/bkt", []need{{"storage.buckets.get", "bkt"}}},
		{"PATCH", "/storage/v1/b/bkt", []need{{"storage.buckets.update", "bkt"}}},
		{"DELETE", "/storage/v1/b/bkt", []need{{"storage.buckets.delete", "bkt"}}},
		{"GET", "/storage/v1/b/bkt/o?prefix=a/", []need{{"storage.objects.list", "bkt"}}},
		{"GET", "/storage/v1/b/bkt/o/dir%2Fobj?alt=media", []need{{"storage.objects.get", "bkt"}}},
		{"HEAD", "/storage/v1/b/bkt/o/obj", []need{{"storage.objects.get", "bkt"}}},
		{"PATCH", "/storage/v1/b/bkt/o/obj", []need{{"storage.objects.update", "bkt"}}},
		{"DELETE", "/storage/v1/b/bkt/o/dir%2Fobj", []need{{"storage.objects.delete", "bkt"}}},
		{"POST", "/storage/v1/b/bkt/o/obj/compose", []need{{"storage.objects.create", "bkt"}}},
		{"POST", "/storage/v1/b/src/o/a/rewriteTo/b/dst/o/b", []need{{"storage.objects.get", "src"}, {"storage.objects.create", "dst"}}},
		{"POST", "/storage/v1/b/src/o/a/copyTo/b/dst/o/b", []need{{"storage.objects.get", "src"}, {"storage.objects.create", "dst"}}},
		{"GET", "/storage/v1/b/bkt/storageLayout", []need{{"storage.objects.list", "bkt"}}},
		{"GET", "/storage/v1/b/bkt/folders", []need{{"storage.objects.list", "bkt"}}},
		{"GET", "/storage/v1/b/bkt/acl", []need{{"storage.buckets.getIamPolicy", "bkt"}}},
		{"POST", "/storage/v1/b/bkt/defaultObjectAcl", []need{{"storage.buckets.setIamPolicy", "bkt"}}},
		{"GET", "/storage/v1/b/bkt/o/obj/acl", []need{{"storage.objects.getIamPolicy", "bkt"}}},
		{"POST", "/upload/storage/v1/b/bkt/o?uploadType=media&name=x", []need{{"storage.objects.create", "bkt"}}},
		{"PUT", "/upload/storage/v1/b/bkt/o?uploadType=resumable&upload_id=1", []need{{"storage.objects.create", "bkt"}}},
		{"GET", "/download/storage/v1/b/bkt/o/obj?alt=media", []need{{"storage.objects.get", "bkt"}}},
		{"GET", "/storage/v1/projects/p/serviceAccount", nil},
		{"POST", "/batch/storage/v1", []need{ownerOnly}},
		{"GET", "/_internal/healthcheck", []need{ownerOnly}},
		{"GET", "/storage/v1/unknown", []need{ownerOnly}},
		{"GET", "/", []need{{"storage.buckets.list", ""}}},
		{"GET", "/bkt", []need{{"storage.objects.list", "bkt"}}},
		{"PUT", "/bkt", []need{{"storage.buckets.create", ""}}},
		{"DELETE", "/bkt", []need{{"storage.buckets.delete", "bkt"}}},
		{"GET", "/bkt/dir/obj", []need{{"storage.objects.get", "bkt"}}},
		{"PUT", "/bkt/dir/obj", []need{{"storage.objects.create", "bkt"}}},
		{"DELETE", "/bkt/dir/obj", []need{{"storage.objects.delete", "bkt"}}},
	}
	for _, c := range cases {
		r := httptest.NewRequest(c.method, c.path, nil)
		if got := required(r); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s %s: got %v, want %v", c.method, c.path, got, c.want)
		}
	}
}

func TestIAMDecisions(t *testing.T) {
	f := newFixtureWith(t, t.TempDir(), ownedProject)
	if code, body := f.setPolicy(admin, "bkt", []binding{
		{Role: "roles/storage.objectViewer", Members: []string{reader, ksa}},
		{Role: "roles/storage.objectAdmin", Members: []string{writer}},
	}, ""); code != 200 {
		t.Fatalf("setIamPolicy: %d %v", code, body)
	}
	f.setPolicy(admin, "public", []binding{{Role: "roles/storage.objectViewer", Members: []string{"allUsers"}}}, "")
	f.setPolicy(admin, "authn", []binding{{Role: "roles/storage.objectViewer", Members: []string{"allAuthenticatedUsers"}}}, "")
	f.setPolicy(admin, "nsset", []binding{{Role: "roles/storage.objectViewer", Members: []string{
		strings.Replace(pool, "principal://", "principalSet://", 1) + "/namespace/wi-b"}}}, "")
	f.setPolicy(admin, "legacy", []binding{{Role: "roles/storage.objectViewer", Members: []string{
		"serviceAccount:test-project.svc.id.goog[wi-a/reader]"}}}, "")

	cases := []struct {
		who, method, path string
		want              int
	}{
		// the project owner: everything, on buckets whatever their policy
		{admin, "GET", "/storage/v1/b/bkt/o/obj?alt=media", 200},
		{admin, "POST", "/storage/v1/b?project=p", 200},
		{admin, "GET", "/storage/v1/b?project=p", 200},
		{admin, "DELETE", "/storage/v1/b/other/o/x", 200},
		{admin, "POST", "/batch/storage/v1", 200},
		// objectViewer: get and list only
		{reader, "GET", "/storage/v1/b/bkt/o/obj?alt=media", 200},
		{reader, "GET", "/storage/v1/b/bkt/o", 200},
		{reader, "GET", "/bkt/obj", 200},
		{reader, "GET", "/storage/v1/b/bkt", 403},
		{reader, "POST", "/upload/storage/v1/b/bkt/o?uploadType=media&name=x", 403},
		{reader, "DELETE", "/storage/v1/b/bkt/o/obj", 403},
		{reader, "GET", "/storage/v1/b/other/o/obj", 403},
		{reader, "POST", "/storage/v1/b?project=p", 403},
		{reader, "GET", "/storage/v1/b?project=p", 403},
		{reader, "POST", "/batch/storage/v1", 403},
		// objectAdmin: objects, not the bucket
		{writer, "POST", "/upload/storage/v1/b/bkt/o?uploadType=media&name=x", 200},
		{writer, "DELETE", "/storage/v1/b/bkt/o/obj", 200},
		{writer, "DELETE", "/storage/v1/b/bkt", 403},
		{writer, "POST", "/storage/v1/b/bkt/o/a/rewriteTo/b/other/o/b", 403}, // no create on the destination
		// a Workload Identity principal, and the ways a binding can name it
		{ksa, "GET", "/storage/v1/b/bkt/o/obj?alt=media", 200},
		{ksa, "GET", "/storage/v1/b/legacy/o/obj?alt=media", 200},
		{ksaB, "GET", "/storage/v1/b/bkt/o/obj?alt=media", 403},
		{ksaB, "GET", "/storage/v1/b/nsset/o/obj?alt=media", 200},
		{ksa, "GET", "/storage/v1/b/nsset/o/obj?alt=media", 403},
		// the default policy: project convenience values, which name the owners only
		{nobody, "GET", "/storage/v1/b/fresh/o/obj?alt=media", 403},
		{admin, "GET", "/storage/v1/b/fresh/o/obj?alt=media", 200},
		// allUsers and allAuthenticatedUsers; anonymous callers get 401 where they are refused
		{anonymous, "GET", "/storage/v1/b/public/o/obj?alt=media", 200},
		{nobody, "GET", "/storage/v1/b/public/o/obj?alt=media", 200},
		{anonymous, "GET", "/storage/v1/b/authn/o/obj?alt=media", 401},
		{nobody, "GET", "/storage/v1/b/authn/o/obj?alt=media", 200},
		{anonymous, "GET", "/storage/v1/b/bkt/o/obj?alt=media", 401},
		// a bucket name that tries to leave the policy directory is nobody's
		{reader, "GET", "/storage/v1/b/..%2F..%2Fkeys/o/obj?alt=media", 403},
	}
	for _, c := range cases {
		hits := f.hits
		code, body := f.do(c.who, c.method, c.path, nil)
		if code != c.want {
			t.Errorf("%s %s %s: got %d %v, want %d", displayName(c.who), c.method, c.path, code, body, c.want)
		}
		if reached := f.hits > hits; reached != (c.want == 200) {
			t.Errorf("%s %s %s: upstream reached %v", displayName(c.who), c.method, c.path, reached)
		}
	}

	// The refusal is Cloud Storage's, naming the principal and the permission.
	code, body := f.do(ksaB, "GET", "/storage/v1/b/bkt/o/obj?alt=media", nil)
	msg := body["error"].(map[string]any)["message"].(string)
	if code != 403 || !strings.HasPrefix(msg, ksaB+" does not have storage.objects.get access to the Google Cloud Storage object.") {
		t.Errorf("403 body: %v", body)
	}
	if errs := body["error"].(map[string]any)["errors"].([]any); errs[0].(map[string]any)["reason"] != "forbidden" {
		t.Errorf("403 errors: %v", errs)
	}
	_, body = f.do(reader, "GET", "/storage/v1/b/bkt", nil)
	if msg := body["error"].(map[string]any)["message"].(string); !strings.HasPrefix(msg,
		"reader@test-project.iam.gserviceaccount.com does not have storage.buckets.get access to the Google Cloud Storage bucket.") {
		t.Errorf("bucket 403: %q", msg)
	}
}

func TestPolicyEndpoints(t *testing.T) {
	f := newFixtureWith(t, t.TempDir(), ownedProject)
	code, got := f.do(admin, "GET", "/storage/v1/b/bkt/iam", nil)
	if code != 200 || got["etag"] != "CAE=" || got["kind"] != "storage#policy" ||
		got["resourceId"] != "projects/_/buckets/bkt" || got["version"] != 1.0 {
		t.Fatalf("default policy: %d %v", code, got)
	}
	if b := got["bindings"].([]any); len(b) != 4 || b[0].(map[string]any)["role"] != "roles/storage.legacyBucketOwner" {
		t.Fatalf("default bindings: %v", b)
	}

	grant := []binding{{Role: "roles/storage.objectViewer", Members: []string{ksa}}}
	cases := []struct {
		name, who, method, path string
		body                    any
		want                    int
	}{
		{"reader may not read the policy", reader, "GET", "/storage/v1/b/bkt/iam", nil, 403},
		{"anonymous", anonymous, "GET", "/storage/v1/b/bkt/iam", nil, 401},
		{"reader may not set it", reader, "PUT", "/storage/v1/b/bkt/iam", map[string]any{"bindings": grant}, 403},
		{"stale etag", admin, "PUT", "/storage/v1/b/bkt/iam", map[string]any{"bindings": grant, "etag": "CAU="}, 412},
		{"unknown role", admin, "PUT", "/storage/v1/b/bkt/iam",
			map[string]any{"bindings": []binding{{Role: "roles/owner", Members: []string{ksa}}}}, 400},
		{"bad member", admin, "PUT", "/storage/v1/b/bkt/iam",
			map[string]any{"bindings": []binding{{Role: "roles/storage.objectViewer", Members: []string{"alice"}}}}, 400},
		{"not JSON", admin, "PUT", "/storage/v1/b/bkt/iam", "nope", 400},
		{"missing bucket", admin, "GET", "/storage/v1/b/missing/iam", nil, 404},
		{"bad bucket name", admin, "GET", "/storage/v1/b/B%2F..%2Fx/iam", nil, 400},
		{"POST", admin, "POST", "/storage/v1/b/bkt/iam", nil, 405},
		{"current etag", admin, "PUT", "/storage/v1/b/bkt/iam", map[string]any{"bindings": grant, "etag": "CAE="}, 200},
		{"the etag moved on", admin, "PUT", "/storage/v1/b/bkt/iam", map[string]any{"bindings": grant, "etag": "CAE="}, 412},
	}
	for _, c := range cases {
		if code, body := f.do(c.who, c.method, c.path, c.body); code != c.want {
			t.Errorf("%s: got %d %v, want %d", c.name, code, body, c.want)
		}
	}
	code, got = f.do(admin, "GET", "/storage/v1/b/bkt/iam", nil)
	if code != 200 || got["etag"] != "CAI=" || len(got["bindings"].([]any)) != 1 {
		t.Fatalf("after set: %d %v", code, got)
	}
	// The policy survives a restart; a PUT without an etag overwrites unconditionally.
	g2 := newFixtureWith(t, f.dir, ownedProject)
	if code, got := g2.do(admin, "GET", "/storage/v1/b/bkt/iam", nil); code != 200 || got["etag"] != "CAI=" {
		t.Fatalf("after restart: %d %v", code, got)
	}
	if code, got := g2.setPolicy(admin, "bkt", grant, ""); code != 200 || got["etag"] != "CAM=" {
		t.Fatalf("unconditional set: %d %v", code, got)
	}
	if _, err := os.Stat(filepath.Join(f.dir, "iam/buckets/bkt.json")); err != nil {
		t.Fatal(err)
	}

	// testPermissions answers the subset the caller holds; it needs no permission of its own.
	tp := func(who string, perms ...string) (int, []any) {
		q := url.Values{"permissions": perms}
		code, body := f.do(who, "GET", "/storage/v1/b/bkt/iam/testPermissions?"+q.Encode(), nil)
		p, _ := body["permissions"].([]any)
		return code, p
	}
	tests := []struct {
		who   string
		perms []string
		code  int
		want  []any
	}{
		{ksa, []string{"storage.objects.get", "storage.objects.list", "storage.objects.create"}, 200,
			[]any{"storage.objects.get", "storage.objects.list"}},
		{ksaB, []string{"storage.objects.get"}, 200, []any{}},
		{admin, []string{"storage.buckets.setIamPolicy", "storage.objects.delete"}, 200,
			[]any{"storage.buckets.setIamPolicy", "storage.objects.delete"}},
		{ksa, []string{"storage.objects.fly"}, 400, nil},
		{ksa, nil, 400, nil},
	}
	for _, c := range tests {
		code, got := tp(c.who, c.perms...)
		if code != c.code || (c.code == 200 && !reflect.DeepEqual(got, c.want)) {
			t.Errorf("testPermissions %s %v: got %d %v, want %d %v", displayName(c.who), c.perms, code, got, c.code, c.want)
		}
	}

	// Deleting the bucket drops its policy: a bucket made again under the name starts from the default.
	if code, _ := f.do(admin, "DELETE", "/storage/v1/b/bkt", nil); code != 200 {
		t.Fatalf("delete bucket: %d", code)
	}
	if code, got := f.do(admin, "GET", "/storage/v1/b/bkt/iam", nil); code != 200 || got["etag"] != "CAE=" {
		t.Fatalf("policy after delete: %d %v", code, got)
	}
}

func TestEtagIsCloudStorages(t *testing.T) {
	for rev, want := range map[uint64]string{1: "CAE=", 2: "CAI=", 5: "CAU=", 300: "CKwC"} {
		if got := etag(rev); got != want {
			t.Errorf("etag(%d) = %q, want %q", rev, got, want)
		}
	}
}

// The substrate's key keeps working: with no -project-owner, every key holder owns the project (the
// gateway before IAM); with owners named, a key of another account has only what policies grant it.
func TestKeyHoldersAndOwners(t *testing.T) {
	priv, cert := newKey(t)
	keyed := "serviceAccount:" + email
	for _, c := range []struct {
		name string
		proj project
		want int
	}{
		{"no owners named: key holders own", testProject, 200},
		{"owners named: the key's account is not one", ownedProject, 403},
		{"owners named: the key's account is one", project{ID: "test-project", Number: "1", Owners: []string{keyed}}, 200},
	} {
		f := newFixtureWith(t, t.TempDir(), c.proj)
		kid := f.upload(cert)
		_, tok := f.token(jwtBearer, jwt(t, priv, kid, f.claims(time.Hour)))
		if got := f.get(tok["access_token"].(string)); got != c.want {
			t.Errorf("%s: token: got %d, want %d", c.name, got, c.want)
		}
		// A self-signed JWT (no token endpoint) is the same principal.
		self := jwt(t, priv, kid, map[string]any{"iss": email, "sub": email, "aud": "https://storage.googleapis.com/",
			"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()})
		if got := f.get(self); got != c.want {
			t.Errorf("%s: self-signed JWT: got %d, want %d", c.name, got, c.want)
		}
	}
	// Tokens minted before IAM carry the bare email: still that service account's.
	f := newFixtureWith(t, t.TempDir(), project{ID: "test-project", Number: "1", Owners: []string{keyed}})
	payload := base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"` + email + `","exp":` +
		strings.TrimSpace(string(must(json.Marshal(time.Now().Add(time.Hour).Unix())))) + `}`))
	legacy := tokenPrefix + payload + "." + base64.RawURLEncoding.EncodeToString(f.g.mac(payload))
	if p, err := f.g.checkBearer(legacy); err != nil || p != keyed {
		t.Fatalf("legacy token: %q %v", p, err)
	}
	if got := f.get(legacy); got != 200 {
		t.Fatalf("legacy token GET: %d", got)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
