package main

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

const email = "sa@test-project.iam.gserviceaccount.com"

type fixture struct {
	t        *testing.T
	g        *gateway
	dir      string
	upstream *httptest.Server
	gw       *httptest.Server
	hits     int
	lastHost string
	lastAuth string
}

// testProject has no owners given: every service account with a registered key owns it.
var testProject = project{ID: "test-project", Number: "123456789012"}

func newFixture(t *testing.T, dir string) *fixture { return newFixtureWith(t, dir, testProject) }

func newFixtureWith(t *testing.T, dir string, proj project) *fixture {
	f := &fixture{t: t, dir: dir}
	f.upstream = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.hits++
		f.lastHost, f.lastAuth = r.Host, r.Header.Get("Authorization")
		if strings.Contains(r.URL.Path, "/missing") {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte("object bytes"))
	}))
	t.Cleanup(f.upstream.Close)
	target, _ := url.Parse(f.upstream.URL)
	g, err := newGateway(dir, time.Hour, 5*time.Minute, target, proj)
	if err != nil {
		t.Fatal(err)
	}
	f.g = g
	f.gw = httptest.NewServer(g)
	t.Cleanup(f.gw.Close)
	return f
}

func newKey(t *testing.T) (*rsa.PrivateKey, []byte) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: email},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	return priv, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func (f *fixture) upload(cert []byte) string {
	body, _ := json.Marshal(map[string]string{"publicKeyData": base64.StdEncoding.EncodeToString(cert)})
	resp, err := http.Post(f.gw.URL+"/v1/projects/-/serviceAccounts/"+email+"/keys:upload", "application/json",
		bytes.NewReader(body))
	if err != nil || resp.StatusCode != 200 {
		f.t.Fatalf("upload: %v %v", err, resp.Status)
	}
	var res struct{ Name string }
	json.NewDecoder(resp.Body).Decode(&res)
	return res.Name[strings.LastIndex(res.Name, "/")+1:]
}

// jwt signs claims the way google-auth's service_account.Credentials does.
func jwt(t *testing.T, priv *rsa.PrivateKey, kid string, claims map[string]any) string {
	enc := func(v any) string { b, _ := json.Marshal(v); return base64.RawURLEncoding.EncodeToString(b) }
	signing := enc(map[string]string{"alg": "RS256", "typ": "JWT", "kid": kid}) + "." + enc(claims)
	digest := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, priv, crypto.SHA256, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func (f *fixture) claims(lifetime time.Duration) map[string]any {
	now := time.Now().Unix()
	return map[string]any{"iss": email, "scope": "https://www.googleapis.com/auth/devstorage.read_only",
		"aud": f.gw.URL + "/token", "iat": now, "exp": now + int64(lifetime/time.Second)}
}

func (f *fixture) token(grant, assertion string) (int, map[string]any) {
	resp, err := http.PostForm(f.gw.URL+"/token", url.Values{"grant_type": {grant}, "assertion": {assertion}})
	if err != nil {
		f.t.Fatal(err)
	}
	var body map[string]any
	json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

func (f *fixture) get(bearer string) int {
	req, _ := http.NewRequest("GET", f.gw.URL+"/bucket/object", nil)
	req.Host = "gcs.example.test:4443"
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	return resp.StatusCode
}

func TestTokenThenProxy(t *testing.T) {
	f := newFixture(t, t.TempDir())
	priv, cert := newKey(t)
	kid := f.upload(cert)
	if again := f.upload(cert); again != kid || len(kid) != 40 {
		t.Fatalf("upload not idempotent or odd id: %q %q", kid, again)
	}
	code, body := f.token(jwtBearer, jwt(t, priv, kid, f.claims(time.Hour)))
	if code != 200 || body["token_type"] != "Bearer" {
		t.Fatalf("token: %d %v", code, body)
	}
	if got := f.get(body["access_token"].(string)); got != 200 {
		t.Fatalf("proxied GET: %d", got)
	}
	if f.lastHost != "gcs.example.test:4443" || f.lastAuth != "" {
		t.Fatalf("upstream saw Host %q, Authorization %q", f.lastHost, f.lastAuth)
	}
	// A new gateway over the same data directory still knows the key and honours the token.
	g2 := newFixture(t, f.dir)
	if got := g2.get(body["access_token"].(string)); got != 200 {
		t.Fatalf("token after restart: %d", got)
	}
	if code, _ := g2.token(jwtBearer, jwt(t, priv, kid, g2.claims(time.Hour))); code != 200 {
		t.Fatalf("key after restart: %d", code)
	}
}

func TestRefusals(t *testing.T) {
	f := newFixture(t, t.TempDir())
	priv, cert := newKey(t)
	kid := f.upload(cert)
	stranger, _ := newKey(t)
	good := jwt(t, priv, kid, f.claims(time.Hour))
	tampered := good[:len(good)-4] + "AAAA"
	expired := f.claims(time.Hour)
	expired["iat"], expired["exp"] = time.Now().Add(-3*time.Hour).Unix(), time.Now().Add(-2*time.Hour).Unix()
	cases := map[string]struct {
		grant, assertion string
		want             int
	}{
		"unknown key": {jwtBearer, jwt(t, stranger, kid, f.claims(time.Hour)), 401},
		"unknown kid": {jwtBearer, jwt(t, stranger, "0000", f.claims(time.Hour)), 401},
		"tampered":    {jwtBearer, tampered, 401},
		"expired":     {jwtBearer, jwt(t, priv, kid, expired), 401},
		"too long":    {jwtBearer, jwt(t, priv, kid, f.claims(3*time.Hour)), 401},
		"not a jwt":   {jwtBearer, "garbage", 401},
		"wrong grant": {"client_credentials", good, 400},
	}
	for name, c := range cases {
		if code, body := f.token(c.grant, c.assertion); code != c.want {
			t.Errorf("%s: got %d %v, want %d", name, code, body, c.want)
		}
	}
	for name, bearer := range map[string]string{"none": "", "forged": tokenPrefix + "e30.AAAA", "garbage": "x"} {
		if got := f.get(bearer); got != 401 {
			t.Errorf("bearer %s: got %d, want 401", name, got)
		}
	}
	if f.hits != 0 {
		t.Fatalf("the upstream was reached %d times without a valid token", f.hits)
	}
}
