package main

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func testKey(t *testing.T, tokenURI string) (*rsa.PrivateKey, []byte) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(priv)
	key, _ := json.Marshal(map[string]string{"type": "service_account", "client_email": "sa@p.iam.gserviceaccount.com",
		"private_key_id": "kid1", "token_uri": tokenURI,
		"private_key": string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))})
	return priv, key
}

func TestKeyTokenSourceSignsAJWTBearerGrant(t *testing.T) {
	var priv *rsa.PrivateKey
	fetches := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches++
		r.ParseForm()
		if r.Form.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
			t.Errorf("grant_type %q", r.Form.Get("grant_type"))
		}
		parts := strings.Split(r.Form.Get("assertion"), ".")
		sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
		digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
		if err := rsa.VerifyPKCS1v15(&priv.PublicKey, crypto.SHA256, digest[:], sig); err != nil {
			t.Errorf("bad signature: %v", err)
		}
		claims, _ := base64.RawURLEncoding.DecodeString(parts[1])
		var c map[string]any
		json.Unmarshal(claims, &c)
		if c["iss"] != "sa@p.iam.gserviceaccount.com" || c["aud"] != "http://"+r.Host+"/token" || c["scope"] != readOnlyScope {
			t.Errorf("claims %v", c)
		}
		fmt.Fprint(w, `{"access_token":"tok","expires_in":3600,"token_type":"Bearer"}`)
	}))
	defer srv.Close()
	var key []byte
	priv, key = testKey(t, srv.URL+"/token")
	source, email, err := KeyTokenSource(srv.Client(), key)
	if err != nil || email != "sa@p.iam.gserviceaccount.com" {
		t.Fatal(email, err)
	}
	for i := 0; i < 3; i++ {
		if tok, err := source.Token(context.Background()); tok != "tok" || err != nil {
			t.Fatal(tok, err)
		}
	}
	if fetches != 1 {
		t.Fatalf("a valid token was fetched %d times", fetches)
	}
	// Within a minute of its expiry a new one is fetched.
	source.now = func() time.Time { return time.Now().Add(59*time.Minute + 30*time.Second) }
	source.Token(context.Background())
	if fetches != 2 {
		t.Fatalf("an expiring token was not renewed (%d fetches)", fetches)
	}
}

func TestKeyErrorsNeverQuoteTheKey(t *testing.T) {
	_, key := testKey(t, "http://127.0.0.1:9/token")
	var fields map[string]string
	json.Unmarshal(key, &fields)
	fields["private_key"] = strings.Replace(fields["private_key"], "MII", "XXX", 1)
	broken, _ := json.Marshal(fields)
	_, _, err := KeyTokenSource(http.DefaultClient, broken)
	if err == nil || strings.Contains(err.Error(), "XXX") || strings.Contains(err.Error(), "PRIVATE") {
		t.Fatalf("err = %v", err)
	}
	for _, bad := range []string{`{"type":"authorized_user"}`, `not json`, `{"type":"service_account"}`} {
		if _, _, err := KeyTokenSource(http.DefaultClient, []byte(bad)); err == nil {
			t.Fatalf("accepted %s", bad)
		}
	}
}

func TestMetadataTokenSourceAsksWithTheFlavorHeader(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Metadata-Flavor") != "Google" || r.URL.Path != "/computeMetadata/v1/instance/service-accounts/default/token" {
			http.Error(w, "no", http.StatusForbidden)
			return
		}
		fmt.Fprint(w, `{"access_token":"wi","expires_in":600}`)
	}))
	defer srv.Close()
	source := MetadataTokenSource(srv.Client(), strings.TrimPrefix(srv.URL, "http://"))
	if tok, err := source.Token(context.Background()); tok != "wi" || err != nil {
		t.Fatal(tok, err)
	}
}

func TestNoCredentialsIsRefusedRatherThanGuessed(t *testing.T) {
	_, _, err := NewCredentials(http.DefaultClient, func(string) string { return "" }, false)
	if err == nil || !strings.Contains(err.Error(), "GCE_METADATA_HOST") {
		t.Fatalf("err = %v", err)
	}
}
