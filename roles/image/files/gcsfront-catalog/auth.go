package main

// Access tokens for the listing, from the same credentials gcsfuse uses: the service-account key file
// (GOOGLE_APPLICATION_CREDENTIALS: the OAuth 2.0 JWT-bearer grant at the key's token_uri, as google-auth does)
// or the metadata server (GCE_METADATA_HOST: GKE's Workload Identity, or the substrate's). Standard library
// only: the image builds without fetching modules. The key never leaves this process: not logged, not in any
// error message.

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
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"
)

const readOnlyScope = "https://www.googleapis.com/auth/devstorage.read_only"

// TokenSource gives a valid access token, fetching a new one when the last is within a minute of expiring.
type TokenSource struct {
	fetch func(ctx context.Context) (token string, expiresIn time.Duration, err error)
	now   func() time.Time

	mu      sync.Mutex
	token   string
	expires time.Time
}

// Token returns a token valid for at least another minute.
func (s *TokenSource) Token(ctx context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.token != "" && s.now().Add(time.Minute).Before(s.expires) {
		return s.token, nil
	}
	token, expiresIn, err := s.fetch(ctx)
	if err != nil {
		return "", err
	}
	s.token, s.expires = token, s.now().Add(expiresIn)
	return token, nil
}

type tokenResponse struct {
	AccessToken string `json:"access_token"`
	ExpiresIn   int64  `json:"expires_in"`
}

func readToken(resp *http.Response, from string) (string, time.Duration, error) {
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", 0, fmt.Errorf("reading the token from %s: %w", from, err)
	}
	if resp.StatusCode != http.StatusOK {
		// The server's own words (a metadata server says why; a token endpoint gives an OAuth error code).
		reason := strings.TrimSpace(strings.SplitN(string(body), "\n", 2)[0])
		if len(reason) > 200 {
			reason = reason[:200]
		}
		return "", 0, fmt.Errorf("%s answered %s to the token request: %s", from, resp.Status, reason)
	}
	var t tokenResponse
	if err := json.Unmarshal(body, &t); err != nil || t.AccessToken == "" {
		return "", 0, fmt.Errorf("%s gave no access token", from)
	}
	return t.AccessToken, time.Duration(t.ExpiresIn) * time.Second, nil
}

// gkeMetadataHost is where a GKE pod's metadata server answers (Workload Identity).
const gkeMetadataHost = "169.254.169.254"

// NewCredentials picks the credentials as gcsfuse does: the key file when GOOGLE_APPLICATION_CREDENTIALS names
// one, else the metadata server at GCE_METADATA_HOST, else (workloadIdentity: on GKE) GKE's. Otherwise it
// refuses: it never dials the cloud metadata address unless told the pod is on GKE.
func NewCredentials(client *http.Client, getenv func(string) string, workloadIdentity bool) (*TokenSource, string, error) {
	if path := getenv("GOOGLE_APPLICATION_CREDENTIALS"); path != "" {
		key, err := os.ReadFile(path)
		if err != nil {
			return nil, "", fmt.Errorf("reading the key file: %w", err)
		}
		source, email, err := KeyTokenSource(client, key)
		if err != nil {
			return nil, "", err
		}
		return source, "the key of " + email, nil
	}
	if host := getenv("GCE_METADATA_HOST"); host != "" {
		return MetadataTokenSource(client, host), "the metadata server at " + host, nil
	}
	if workloadIdentity {
		return MetadataTokenSource(client, gkeMetadataHost), "GKE's metadata server (Workload Identity)", nil
	}
	return nil, "", errors.New("no credentials: set GOOGLE_APPLICATION_CREDENTIALS (a key file) or GCE_METADATA_HOST (a metadata server), or pass -workload-identity on GKE")
}

// MetadataTokenSource asks the metadata server for the default service account's token.
func MetadataTokenSource(client *http.Client, host string) *TokenSource {
	endpoint := "http://" + host + "/computeMetadata/v1/instance/service-accounts/default/token"
	return &TokenSource{now: time.Now, fetch: func(ctx context.Context) (string, time.Duration, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
		if err != nil {
			return "", 0, err
		}
		req.Header.Set("Metadata-Flavor", "Google")
		resp, err := client.Do(req)
		if err != nil {
			return "", 0, fmt.Errorf("the metadata server at %s: %w", host, err)
		}
		return readToken(resp, "the metadata server at "+host)
	}}
}

type serviceAccountKey struct {
	Type         string `json:"type"`
	ClientEmail  string `json:"client_email"`
	PrivateKey   string `json:"private_key"`
	PrivateKeyID string `json:"private_key_id"`
	TokenURI     string `json:"token_uri"`
}

// KeyTokenSource signs a JWT-bearer grant with the key and trades it at the key's token_uri. It returns the
// source and the key's client_email.
func KeyTokenSource(client *http.Client, keyJSON []byte) (*TokenSource, string, error) {
	var key serviceAccountKey
	if err := json.Unmarshal(keyJSON, &key); err != nil || key.Type != "service_account" {
		return nil, "", errors.New("the key file is not a service-account key (JSON with type service_account)")
	}
	if key.ClientEmail == "" || key.TokenURI == "" {
		return nil, "", errors.New("the service-account key lacks client_email or token_uri")
	}
	block, _ := pem.Decode([]byte(key.PrivateKey))
	if block == nil {
		return nil, "", errors.New("the service-account key's private_key is not PEM")
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		parsed, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	}
	signer, ok := parsed.(*rsa.PrivateKey)
	if err != nil || !ok {
		return nil, "", errors.New("the service-account key's private_key is not an RSA key")
	}
	source := &TokenSource{now: time.Now}
	source.fetch = func(ctx context.Context) (string, time.Duration, error) {
		assertion, err := signJWT(signer, key, source.now())
		if err != nil {
			return "", 0, err
		}
		form := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "assertion": {assertion}}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, key.TokenURI, strings.NewReader(form.Encode()))
		if err != nil {
			return "", 0, fmt.Errorf("the key's token_uri: %w", err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := client.Do(req)
		if err != nil {
			return "", 0, fmt.Errorf("the token endpoint %s: %w", key.TokenURI, err)
		}
		return readToken(resp, key.TokenURI)
	}
	return source, key.ClientEmail, nil
}

func signJWT(signer *rsa.PrivateKey, key serviceAccountKey, now time.Time) (string, error) {
	b64 := base64.RawURLEncoding.EncodeToString
	header := map[string]string{"alg": "RS256", "typ": "JWT"}
	if key.PrivateKeyID != "" {
		header["kid"] = key.PrivateKeyID
	}
	claims := map[string]any{"iss": key.ClientEmail, "scope": readOnlyScope, "aud": key.TokenURI,
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	unsigned := b64(h) + "." + b64(c)
	digest := sha256.Sum256([]byte(unsigned))
	sig, err := rsa.SignPKCS1v15(rand.Reader, signer, crypto.SHA256, digest[:])
	if err != nil {
		return "", errors.New("signing the token request with the key failed")
	}
	return unsigned + "." + b64(sig), nil
}
