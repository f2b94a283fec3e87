package main

import (
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

const jwtBearer = "urn:ietf:params:oauth:grant-type:jwt-bearer"

// key is a registered service-account key: its id, owner and public half.
type key struct {
	ID      string `json:"id"`
	Email   string `json:"email"`
	CertPEM string `json:"cert_pem"`
	Created string `json:"created"`
	pub     *rsa.PublicKey
	expires time.Time
}

type gateway struct {
	dir    string
	ttl    time.Duration
	skew   time.Duration
	secret []byte
	proxy  *httputil.ReverseProxy
	now    func() time.Time

	upstream *url.URL
	client   *http.Client // to the emulator, for the bucket lookups of IAM requests
	project  project

	mu   sync.Mutex
	keys map[string]*key

	iamMu sync.Mutex // serialises policy read-modify-write
}

func newGateway(dir string, ttl, skew time.Duration, upstream *url.URL, proj project) (*gateway, error) {
	if err := os.MkdirAll(filepath.Join(dir, "keys"), 0o700); err != nil {
		return nil, err
	}
	g := &gateway{dir: dir, ttl: ttl, skew: skew, proxy: newProxy(upstream), now: time.Now, keys: map[string]*key{},
		upstream: upstream, client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}},
		project: proj}
	secretFile := filepath.Join(dir, "token-secret")
	secret, err := os.ReadFile(secretFile)
	if errors.Is(err, os.ErrNotExist) {
		secret = make([]byte, 32)
		if _, err := rand.Read(secret); err != nil {
			return nil, err
		}
		err = os.WriteFile(secretFile, secret, 0o600)
	}
	if err != nil {
		return nil, fmt.Errorf("token secret: %w", err)
	}
	g.secret = secret
	return g, g.loadKeys()
}

func (g *gateway) loadKeys() error {
	files, err := filepath.Glob(filepath.Join(g.dir, "keys", "*.json"))
	if err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		var k key
		if err := json.Unmarshal(data, &k); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		if err := k.parse(); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		g.keys[k.ID] = &k
	}
	return nil
}

func (k *key) parse() error {
	block, _ := pem.Decode([]byte(k.CertPEM))
	if block == nil || block.Type != "CERTIFICATE" {
		return errors.New("publicKeyData is not a PEM certificate")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return fmt.Errorf("publicKeyData: %v", err)
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return errors.New("publicKeyData: only RSA keys are supported")
	}
	sum := sha1.Sum(block.Bytes)
	k.ID, k.pub, k.expires = hex.EncodeToString(sum[:]), pub, cert.NotAfter
	return nil
}

func (g *gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &recorder{ResponseWriter: w, status: 200}
	switch {
	case r.URL.Path == "/healthz":
		rec.Write([]byte("ok\n"))
	case r.URL.Path == "/token":
		g.token(rec, r)
	case strings.HasPrefix(r.URL.Path, "/v1/projects/"):
		g.iam(rec, r)
	default:
		g.storage(rec, r)
	}
	if r.URL.Path != "/healthz" {
		log.Printf("%s %s %d %s%s", r.Method, r.URL.Path, rec.status, time.Since(start).Round(time.Millisecond), rec.reason)
	}
}

// iam serves keys:upload and the key list of projects.serviceAccounts.keys.
func (g *gateway) iam(w *recorder, r *http.Request) {
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/v1/"), "/")
	// projects/{p}/serviceAccounts/{email}:getIamPolicy|:setIamPolicy
	if len(parts) == 4 && parts[0] == "projects" && parts[2] == "serviceAccounts" {
		if email, verb, ok := strings.Cut(parts[3], ":"); ok && (verb == "getIamPolicy" || verb == "setIamPolicy") {
			g.serviceAccountIAM(w, r, email, verb)
			return
		}
	}
	// projects/{p}/serviceAccounts/{email}/keys[:upload]
	if len(parts) != 5 || parts[0] != "projects" || parts[2] != "serviceAccounts" {
		w.jsonError(http.StatusNotFound, "not_found", "unknown IAM path")
		return
	}
	email := parts[3]
	switch {
	case parts[4] == "keys:upload" && r.Method == http.MethodPost:
		var body struct {
			PublicKeyData string `json:"publicKeyData"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&body); err != nil {
			w.jsonError(http.StatusBadRequest, "invalid_argument", "body is not JSON: "+err.Error())
			return
		}
		certPEM, err := base64.StdEncoding.DecodeString(body.PublicKeyData)
		if err != nil {
			w.jsonError(http.StatusBadRequest, "invalid_argument", "publicKeyData is not base64")
			return
		}
		k := &key{Email: email, CertPEM: string(certPEM), Created: g.now().UTC().Format(time.RFC3339)}
		if err := k.parse(); err != nil {
			w.jsonError(http.StatusBadRequest, "invalid_argument", err.Error())
			return
		}
		if err := g.store(k); err != nil {
			w.jsonError(http.StatusInternalServerError, "internal", err.Error())
			return
		}
		writeJSON(w, http.StatusOK, resource(k))
	case parts[4] == "keys" && r.Method == http.MethodGet:
		g.mu.Lock()
		list := []map[string]string{}
		for _, k := range g.keys {
			if k.Email == email {
				list = append(list, resource(k))
			}
		}
		g.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"keys": list})
	default:
		w.jsonError(http.StatusMethodNotAllowed, "method_not_allowed", "use POST keys:upload or GET keys")
	}
}

func (g *gateway) store(k *key) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if old, ok := g.keys[k.ID]; ok && old.Email == k.Email {
		*k = *old // the same certificate again: idempotent
		return nil
	}
	data, _ := json.Marshal(k)
	tmp := filepath.Join(g.dir, "keys", k.ID+".json.tmp")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(g.dir, "keys", k.ID+".json")); err != nil {
		return err
	}
	g.keys[k.ID] = k
	return nil
}

func resource(k *key) map[string]string {
	return map[string]string{
		"name":            "projects/-/serviceAccounts/" + k.Email + "/keys/" + k.ID,
		"validAfterTime":  k.Created,
		"validBeforeTime": k.expires.UTC().Format(time.RFC3339),
		"keyAlgorithm":    "KEY_ALG_RSA_2048",
		"keyOrigin":       "USER_PROVIDED",
		"keyType":         "USER_MANAGED",
	}
}

// token answers the JWT-bearer grant that google-auth and golang.org/x/oauth2 send to token_uri.
func (g *gateway) token(w *recorder, r *http.Request) {
	if r.Method != http.MethodPost {
		w.jsonError(http.StatusMethodNotAllowed, "invalid_request", "POST only")
		return
	}
	if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != jwtBearer {
		w.oauthError(http.StatusBadRequest, "unsupported_grant_type", "grant_type must be "+jwtBearer)
		return
	}
	claims, k, err := g.verify(r.PostForm.Get("assertion"))
	if err == nil && !strings.HasSuffix(claims.audience(), "/token") {
		err = fmt.Errorf("assertion audience %q is not a token endpoint", claims.audience())
	}
	if err == nil && claims.Iss != k.Email {
		err = errors.New("assertion issuer is not the key's service account")
	}
	if err == nil && claims.Exp-claims.Iat > int64((time.Hour+g.skew)/time.Second) {
		err = errors.New("assertion lifetime exceeds one hour")
	}
	if err != nil {
		w.oauthError(http.StatusUnauthorized, "invalid_grant", err.Error())
		return
	}
	exp := g.now().Add(g.ttl)
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": g.mint("serviceAccount:"+k.Email, exp),
		"token_type":   "Bearer",
		"expires_in":   int(g.ttl / time.Second),
	})
}

// storage proxies to the emulator the requests whose caller holds every permission they need: a
// token of ours or a JWT signed by a registered key names the principal, no token is anonymous.
func (g *gateway) storage(w *recorder, r *http.Request) {
	principal := anonymous
	if bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		p, err := g.checkBearer(strings.TrimSpace(bearer))
		if err != nil {
			g.unauthenticated(w, err.Error())
			return
		}
		principal = p
	}
	s := segments(r.URL)
	if len(s) >= 5 && s[0] == "storage" && s[1] == "v1" && s[2] == "b" && s[4] == "iam" {
		if len(s) == 5 || (len(s) == 6 && s[5] == "testPermissions") {
			if principal == anonymous {
				g.unauthenticated(w, "no Bearer token")
				return
			}
			g.bucketIAM(w, r, principal, s[3], len(s) == 6)
			return
		}
	}
	needs := required(r)
	for _, n := range needs {
		ok, err := g.allowed(principal, n.perm, n.bucket)
		if err != nil {
			gcsError(w, http.StatusInternalServerError, "backendError", err.Error())
			return
		}
		if !ok {
			denied(w, principal, n)
			return
		}
	}
	g.proxy.ServeHTTP(w, r)
	if len(needs) == 1 && needs[0].perm == "storage.buckets.delete" && w.status/100 == 2 {
		g.forgetPolicy(needs[0].bucket)
	}
}

func (g *gateway) unauthenticated(w *recorder, reason string) {
	w.reason = " (" + reason + ")"
	w.Header().Set("WWW-Authenticate", `Bearer realm="gcs-emulator"`)
	msg := "Invalid Credentials"
	writeJSON(w, http.StatusUnauthorized, map[string]any{"error": map[string]any{
		"code": 401, "message": msg,
		"errors": []map[string]string{{"domain": "global", "reason": "authError", "message": msg,
			"locationType": "header", "location": "Authorization"}},
	}})
}

// checkBearer returns the principal a token stands for.
func (g *gateway) checkBearer(token string) (string, error) {
	if strings.HasPrefix(token, tokenPrefix) {
		return g.checkMinted(token)
	}
	// Newer Google client libraries may send a self-signed JWT instead of fetching a token.
	claims, k, err := g.verify(token)
	if err != nil {
		return "", err
	}
	if claims.Iss != k.Email || claims.Sub != k.Email {
		return "", errors.New("self-signed JWT: iss and sub must be the key's service account")
	}
	return "serviceAccount:" + k.Email, nil
}

type claims struct {
	Iss   string          `json:"iss"`
	Sub   string          `json:"sub"`
	Aud   json.RawMessage `json:"aud"`
	Iat   int64           `json:"iat"`
	Exp   int64           `json:"exp"`
	Scope string          `json:"scope"`
}

func (c claims) audience() string {
	var s string
	if json.Unmarshal(c.Aud, &s) == nil {
		return s
	}
	var list []string
	if json.Unmarshal(c.Aud, &list) == nil && len(list) > 0 {
		return list[0]
	}
	return ""
}

// verify checks an RS256 JWT against the registered keys and its time claims.
func (g *gateway) verify(jwt string) (*claims, *key, error) {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return nil, nil, errors.New("assertion is not a JWT")
	}
	var header struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}
	var c claims
	if err := decodeSegment(parts[0], &header); err != nil {
		return nil, nil, errors.New("assertion header is not JSON")
	}
	if err := decodeSegment(parts[1], &c); err != nil {
		return nil, nil, errors.New("assertion claims are not JSON")
	}
	if header.Alg != "RS256" {
		return nil, nil, fmt.Errorf("assertion algorithm %q is not RS256", header.Alg)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return nil, nil, errors.New("assertion signature is not base64url")
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	var signer *key
	for _, k := range g.candidates(header.Kid, c.Iss) {
		if rsa.VerifyPKCS1v15(k.pub, crypto.SHA256, digest[:], sig) == nil {
			signer = k
			break
		}
	}
	if signer == nil {
		return nil, nil, errors.New("assertion signed by an unknown key")
	}
	now := g.now().Unix()
	skew := int64(g.skew / time.Second)
	if c.Exp == 0 || now > c.Exp+skew {
		return nil, nil, errors.New("assertion expired")
	}
	if c.Iat > now+skew {
		return nil, nil, errors.New("assertion issued in the future")
	}
	return &c, signer, nil
}

// candidates are the keys that may have signed: the one named by kid, else every key of iss.
func (g *gateway) candidates(kid, iss string) []*key {
	g.mu.Lock()
	defer g.mu.Unlock()
	if k, ok := g.keys[kid]; ok {
		return []*key{k}
	}
	if kid != "" {
		return nil
	}
	var ks []*key
	for _, k := range g.keys {
		if k.Email == iss {
			ks = append(ks, k)
		}
	}
	return ks
}

const tokenPrefix = "gcsemu1."

// mint issues an access token for a principal (an IAM member: serviceAccount:EMAIL, principal://...).
// Tokens are stateless: the principal and expiry, HMAC-signed with the data dir's secret, so every
// token maps back to its principal, also after a restart.
func (g *gateway) mint(principal string, exp time.Time) string {
	payload, _ := json.Marshal(map[string]any{"sub": principal, "exp": exp.Unix()})
	p := base64.RawURLEncoding.EncodeToString(payload)
	return tokenPrefix + p + "." + base64.RawURLEncoding.EncodeToString(g.mac(p))
}

func (g *gateway) checkMinted(token string) (string, error) {
	p, sig, ok := strings.Cut(strings.TrimPrefix(token, tokenPrefix), ".")
	mac, err := base64.RawURLEncoding.DecodeString(sig)
	if !ok || err != nil || !hmac.Equal(mac, g.mac(p)) {
		return "", errors.New("token not issued by this gateway")
	}
	var payload struct {
		Sub string `json:"sub"`
		Exp int64  `json:"exp"`
	}
	if decodeSegment(p, &payload) != nil || g.now().Unix() > payload.Exp {
		return "", errors.New("token expired")
	}
	if payload.Sub == "" {
		return "", errors.New("token names no principal")
	}
	if !strings.Contains(payload.Sub, ":") {
		// Tokens minted before the gateway enforced IAM carry the bare service-account email.
		return "serviceAccount:" + payload.Sub, nil
	}
	return payload.Sub, nil
}

func (g *gateway) mac(payload string) []byte {
	m := hmac.New(sha256.New, g.secret)
	m.Write([]byte(payload))
	return m.Sum(nil)
}

func decodeSegment(seg string, v any) error {
	data, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(seg, "="))
	if err != nil {
		return err
	}
	return json.Unmarshal(data, v)
}

type recorder struct {
	http.ResponseWriter
	status int
	reason string
}

func (r *recorder) WriteHeader(code int) { r.status = code; r.ResponseWriter.WriteHeader(code) }

// Flush lets the proxy stream large objects.
func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *recorder) jsonError(code int, status, msg string) {
	r.reason = " (" + msg + ")"
	writeJSON(r, code, map[string]any{"error": map[string]any{"code": code, "status": status, "message": msg}})
}

func (r *recorder) oauthError(code int, kind, msg string) {
	r.reason = " (" + msg + ")"
	writeJSON(r, code, map[string]string{"error": kind, "error_description": msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
