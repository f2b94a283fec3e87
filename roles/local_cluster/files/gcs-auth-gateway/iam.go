package main

// Bucket IAM, the way Cloud Storage decides: every request names the permissions it needs, the
// caller's principal must be a member of a binding whose role grants each of them, either in the
// bucket's policy or on the project. Policies are served and changed through the JSON API's
// GET/PUT /storage/v1/b/{bucket}/iam and .../iam/testPermissions, and kept under -data-dir.

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// anonymous is the principal of a request without a token.
const anonymous = ""

var objectPerms = []string{"storage.objects.create", "storage.objects.delete", "storage.objects.get",
	"storage.objects.getIamPolicy", "storage.objects.list", "storage.objects.setIamPolicy", "storage.objects.update"}

var bucketPerms = []string{"storage.buckets.create", "storage.buckets.delete", "storage.buckets.get",
	"storage.buckets.getIamPolicy", "storage.buckets.list", "storage.buckets.setIamPolicy", "storage.buckets.update"}

// roles: the predefined Cloud Storage roles that can be bound on a bucket, with their storage permissions.
var roles = map[string][]string{
	"roles/storage.objectViewer":  {"storage.objects.get", "storage.objects.list"},
	"roles/storage.objectCreator": {"storage.objects.create"},
	"roles/storage.objectUser": {"storage.objects.create", "storage.objects.delete", "storage.objects.get",
		"storage.objects.list", "storage.objects.update"},
	"roles/storage.objectAdmin":        objectPerms,
	"roles/storage.bucketViewer":       {"storage.buckets.get", "storage.buckets.list"},
	"roles/storage.admin":              append(append([]string{}, objectPerms...), bucketPerms...),
	"roles/storage.legacyBucketReader": {"storage.buckets.get", "storage.objects.list"},
	"roles/storage.legacyBucketWriter": {"storage.buckets.get", "storage.objects.create", "storage.objects.delete",
		"storage.objects.list"},
	"roles/storage.legacyBucketOwner": {"storage.buckets.get", "storage.buckets.getIamPolicy",
		"storage.buckets.setIamPolicy", "storage.buckets.update", "storage.objects.create", "storage.objects.delete",
		"storage.objects.list"},
	"roles/storage.legacyObjectReader": {"storage.objects.get"},
	"roles/storage.legacyObjectOwner": {"storage.objects.get", "storage.objects.getIamPolicy",
		"storage.objects.setIamPolicy", "storage.objects.update"},
}

// validPermission: the permissions testPermissions accepts.
func validPermission(p string) bool {
	for _, q := range append(append([]string{}, objectPerms...), bucketPerms...) {
		if p == q {
			return true
		}
	}
	return false
}

type binding struct {
	Role    string   `json:"role"`
	Members []string `json:"members"`
}

type policy struct {
	Kind       string    `json:"kind"`
	ResourceID string    `json:"resourceId"`
	Version    int       `json:"version"`
	Etag       string    `json:"etag"`
	Bindings   []binding `json:"bindings"`
}

// storedPolicy is what -data-dir/iam/buckets/{bucket}.json holds.
type storedPolicy struct {
	Revision uint64    `json:"revision"`
	Bindings []binding `json:"bindings"`
}

// etag is Cloud Storage's: the base64 of a protobuf varint field 1 holding the policy's revision ("CAE=" first).
func etag(rev uint64) string {
	buf := binary.AppendUvarint([]byte{0x08}, rev)
	return base64.StdEncoding.EncodeToString(buf)
}

var bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$`)

// project identifies the substrate's project and who owns it: owners hold roles/storage.admin on the
// project, so on every bucket whatever its policy says (and storage.buckets.create/list).
type project struct {
	ID     string
	Number string
	// Owners are members (serviceAccount:...). Nil means: every service account with a registered key,
	// the gateway's behaviour before it enforced IAM.
	Owners []string
}

func (g *gateway) isOwner(principal string) bool {
	if principal == anonymous {
		return false
	}
	if g.project.Owners != nil {
		for _, m := range g.project.Owners {
			if m == principal {
				return true
			}
		}
		return false
	}
	email, ok := strings.CutPrefix(principal, "serviceAccount:")
	if !ok {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, k := range g.keys {
		if k.Email == email {
			return true
		}
	}
	return false
}

// defaultBindings are what a new bucket's policy holds: the project convenience values.
func (g *gateway) defaultBindings() []binding {
	p := g.project.ID
	return []binding{
		{Role: "roles/storage.legacyBucketOwner", Members: []string{"projectEditor:" + p, "projectOwner:" + p}},
		{Role: "roles/storage.legacyBucketReader", Members: []string{"projectViewer:" + p}},
		{Role: "roles/storage.legacyObjectOwner", Members: []string{"projectEditor:" + p, "projectOwner:" + p}},
		{Role: "roles/storage.legacyObjectReader", Members: []string{"projectViewer:" + p}},
	}
}

func (g *gateway) policyFile(bucket string) string {
	return filepath.Join(g.dir, "iam", "buckets", bucket+".json")
}

// loadPolicy reads a bucket's policy; a bucket never given one has the default at revision 1.
func (g *gateway) loadPolicy(bucket string) (storedPolicy, error) {
	data, err := os.ReadFile(g.policyFile(bucket))
	if errors.Is(err, os.ErrNotExist) {
		return storedPolicy{Revision: 1, Bindings: g.defaultBindings()}, nil
	}
	if err != nil {
		return storedPolicy{}, err
	}
	var sp storedPolicy
	if err := json.Unmarshal(data, &sp); err != nil {
		return storedPolicy{}, fmt.Errorf("%s: %w", g.policyFile(bucket), err)
	}
	return sp, nil
}

func (g *gateway) savePolicy(bucket string, sp storedPolicy) error {
	if err := os.MkdirAll(filepath.Dir(g.policyFile(bucket)), 0o700); err != nil {
		return err
	}
	data, _ := json.MarshalIndent(sp, "", "  ")
	tmp := g.policyFile(bucket) + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, g.policyFile(bucket))
}

func (g *gateway) render(bucket string, sp storedPolicy) policy {
	b := sp.Bindings
	if b == nil {
		b = []binding{}
	}
	return policy{Kind: "storage#policy", ResourceID: "projects/_/buckets/" + bucket, Version: 1,
		Etag: etag(sp.Revision), Bindings: b}
}

// matches reports whether a binding's member names the principal.
func (g *gateway) matches(member, principal string) bool {
	switch {
	case member == "allUsers":
		return true
	case principal == anonymous:
		return false
	case member == "allAuthenticatedUsers", member == principal:
		return true
	case member == "projectOwner:"+g.project.ID, member == "projectEditor:"+g.project.ID,
		member == "projectViewer:"+g.project.ID:
		return g.isOwner(principal)
	}
	// A Kubernetes ServiceAccount's principal is also named by its namespace's principalSet and by the
	// older serviceAccount:PROJECT.svc.id.goog[NS/KSA] form.
	if ns, ksa, ok := g.ksaOf(principal); ok {
		return member == g.poolPrefix("principalSet")+"/namespace/"+ns ||
			member == "serviceAccount:"+g.project.ID+".svc.id.goog["+ns+"/"+ksa+"]"
	}
	return false
}

func (g *gateway) poolPrefix(kind string) string {
	return kind + "://iam.googleapis.com/projects/" + g.project.Number + "/locations/global/workloadIdentityPools/" +
		g.project.ID + ".svc.id.goog"
}

// ksaPrincipal is the Workload Identity Federation principal of a Kubernetes ServiceAccount.
func (g *gateway) ksaPrincipal(ns, ksa string) string {
	return g.poolPrefix("principal") + "/subject/ns/" + ns + "/sa/" + ksa
}

func (g *gateway) ksaOf(principal string) (ns, ksa string, ok bool) {
	rest, ok := strings.CutPrefix(principal, g.poolPrefix("principal")+"/subject/ns/")
	if !ok {
		return "", "", false
	}
	ns, ksa, ok = strings.Cut(rest, "/sa/")
	return ns, ksa, ok && ns != "" && ksa != ""
}

// allowed decides one permission on a bucket ("" for the project) for a principal.
func (g *gateway) allowed(principal, perm, bucket string) (bool, error) {
	if g.isOwner(principal) {
		return true, nil
	}
	if bucket == "" || !bucketName.MatchString(bucket) {
		return false, nil
	}
	g.iamMu.Lock()
	sp, err := g.loadPolicy(bucket)
	g.iamMu.Unlock()
	if err != nil {
		return false, err
	}
	for _, b := range sp.Bindings {
		if !grants(b.Role, perm) {
			continue
		}
		for _, m := range b.Members {
			if g.matches(m, principal) {
				return true, nil
			}
		}
	}
	return false, nil
}

func grants(role, perm string) bool {
	for _, p := range roles[role] {
		if p == perm {
			return true
		}
	}
	return false
}

// need is one permission a request needs, on a bucket ("" = on the project).
type need struct{ perm, bucket string }

// segments splits an escaped path into unescaped segments, so %2F inside an object name stays in one.
func segments(u *url.URL) []string {
	parts := strings.Split(strings.Trim(u.EscapedPath(), "/"), "/")
	for i, p := range parts {
		if s, err := url.PathUnescape(p); err == nil {
			parts[i] = s
		}
	}
	if len(parts) == 1 && parts[0] == "" {
		return nil
	}
	return parts
}

// ownerOnly marks requests that no bucket role covers (batch, the emulator's internals): project owners only.
var ownerOnly = need{perm: "storage.buckets.update", bucket: ""}

// required maps a request of the JSON or XML API to the permissions it needs.
func required(r *http.Request) []need {
	s := segments(r.URL)
	read := r.Method == http.MethodGet || r.Method == http.MethodHead
	switch {
	case len(s) >= 2 && s[0] == "storage" && s[1] == "v1":
		return requiredJSON(r.Method, s[2:])
	case len(s) >= 5 && s[0] == "upload" && s[1] == "storage" && s[2] == "v1" && s[3] == "b":
		return []need{{"storage.objects.create", s[4]}}
	case len(s) >= 7 && s[0] == "download" && s[1] == "storage" && s[2] == "v1" && s[3] == "b":
		return []need{{"storage.objects.get", s[4]}}
	case len(s) > 0 && (s[0] == "batch" || strings.HasPrefix(s[0], "_")):
		return []need{ownerOnly}
	case len(s) == 0: // XML: list buckets
		return []need{{"storage.buckets.list", ""}}
	case len(s) == 1: // XML: a bucket
		switch {
		case read:
			return []need{{"storage.objects.list", s[0]}}
		case r.Method == http.MethodPut:
			return []need{{"storage.buckets.create", ""}}
		case r.Method == http.MethodDelete:
			return []need{{"storage.buckets.delete", s[0]}}
		}
		return []need{{"storage.buckets.update", s[0]}}
	default: // XML: an object
		switch {
		case read:
			return []need{{"storage.objects.get", s[0]}}
		case r.Method == http.MethodDelete:
			return []need{{"storage.objects.delete", s[0]}}
		}
		return []need{{"storage.objects.create", s[0]}}
	}
}

func requiredJSON(method string, s []string) []need {
	read := method == http.MethodGet || method == http.MethodHead
	if len(s) == 0 || s[0] != "b" {
		if len(s) >= 3 && s[0] == "projects" && s[2] == "serviceAccount" {
			return nil // the project's service agent: any authenticated caller
		}
		return []need{ownerOnly}
	}
	if len(s) == 1 {
		if read {
			return []need{{"storage.buckets.list", ""}}
		}
		return []need{{"storage.buckets.create", ""}}
	}
	bucket := s[1]
	if len(s) == 2 {
		switch {
		case read:
			return []need{{"storage.buckets.get", bucket}}
		case method == http.MethodDelete:
			return []need{{"storage.buckets.delete", bucket}}
		}
		return []need{{"storage.buckets.update", bucket}}
	}
	switch s[2] {
	case "storageLayout": // asked by gcsfuse at mount; Cloud Storage needs storage.objects.list for it
		return []need{{"storage.objects.list", bucket}}
	case "folders", "managedFolders": // approximated: their own permissions come with the object roles
		if read {
			return []need{{"storage.objects.list", bucket}}
		}
		return []need{{"storage.objects.create", bucket}}
	}
	if s[2] != "o" { // acl, defaultObjectAcl, notificationConfigs...
		if read {
			return []need{{"storage.buckets.getIamPolicy", bucket}}
		}
		return []need{{"storage.buckets.setIamPolicy", bucket}}
	}
	if len(s) == 3 {
		if read {
			return []need{{"storage.objects.list", bucket}}
		}
		return []need{{"storage.objects.create", bucket}}
	}
	if len(s) == 4 {
		switch {
		case s[3] == "watch":
			return []need{{"storage.objects.list", bucket}}
		case read:
			return []need{{"storage.objects.get", bucket}}
		case method == http.MethodDelete:
			return []need{{"storage.objects.delete", bucket}}
		}
		return []need{{"storage.objects.update", bucket}}
	}
	switch s[4] {
	case "compose":
		return []need{{"storage.objects.create", bucket}}
	case "copyTo", "rewriteTo":
		if len(s) >= 7 && s[5] == "b" {
			return []need{{"storage.objects.get", bucket}, {"storage.objects.create", s[6]}}
		}
	case "acl":
		if read {
			return []need{{"storage.objects.getIamPolicy", bucket}}
		}
		return []need{{"storage.objects.setIamPolicy", bucket}}
	}
	return []need{ownerOnly}
}

// denied writes Cloud Storage's 403 (401 for an anonymous caller) for a missing permission.
func denied(w *recorder, principal string, n need) {
	what := "Google Cloud Storage object"
	switch {
	case n.bucket == "":
		what = "Google Cloud project"
	case strings.HasPrefix(n.perm, "storage.buckets."):
		what = "Google Cloud Storage bucket"
	}
	code, reason, who := http.StatusForbidden, "forbidden", displayName(principal)
	if principal == anonymous {
		code, reason = http.StatusUnauthorized, "required"
		w.Header().Set("WWW-Authenticate", `Bearer realm="gcs-emulator"`)
	}
	msg := fmt.Sprintf("%s does not have %s access to the %s.", who, n.perm, what)
	if principal != anonymous {
		msg += fmt.Sprintf(" Permission '%s' denied on resource (or it may not exist).", n.perm)
	}
	w.reason = " (" + who + " lacks " + n.perm + ")"
	writeJSON(w, code, map[string]any{"error": map[string]any{
		"code": code, "message": msg,
		"errors": []map[string]string{{"domain": "global", "reason": reason, "message": msg}},
	}})
}

func displayName(principal string) string {
	switch {
	case principal == anonymous:
		return "Anonymous caller"
	case strings.HasPrefix(principal, "serviceAccount:"), strings.HasPrefix(principal, "user:"):
		_, email, _ := strings.Cut(principal, ":")
		return email
	}
	return principal
}

func gcsError(w *recorder, code int, reason, msg string) {
	w.reason = " (" + msg + ")"
	writeJSON(w, code, map[string]any{"error": map[string]any{
		"code": code, "message": msg,
		"errors": []map[string]string{{"domain": "global", "reason": reason, "message": msg}},
	}})
}

var memberForm = regexp.MustCompile(`^(allUsers|allAuthenticatedUsers|` +
	`(user|serviceAccount|group|domain|projectOwner|projectEditor|projectViewer):[^\s]+|` +
	`principal(Set)?://iam\.googleapis\.com/[^\s]+)$`)

// bucketIAM serves GET/PUT /storage/v1/b/{bucket}/iam and GET .../iam/testPermissions.
func (g *gateway) bucketIAM(w *recorder, r *http.Request, principal, bucket string, test bool) {
	if !bucketName.MatchString(bucket) {
		gcsError(w, http.StatusBadRequest, "invalid", "Invalid bucket name: '"+bucket+"'")
		return
	}
	if test {
		if r.Method != http.MethodGet {
			gcsError(w, http.StatusMethodNotAllowed, "methodNotAllowed", "testPermissions takes GET")
			return
		}
		asked := r.URL.Query()["permissions"]
		if len(asked) == 0 {
			gcsError(w, http.StatusBadRequest, "required", "Required parameter: permissions")
			return
		}
		granted := []string{}
		for _, p := range asked {
			if !validPermission(p) {
				gcsError(w, http.StatusBadRequest, "invalid", "Permission '"+p+"' is not valid for this resource.")
				return
			}
			ok, err := g.allowed(principal, p, bucket)
			if err != nil {
				gcsError(w, http.StatusInternalServerError, "backendError", err.Error())
				return
			}
			if ok {
				granted = append(granted, p)
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"kind": "storage#testIamPermissionsResponse",
			"permissions": granted})
		return
	}
	perm := "storage.buckets.getIamPolicy"
	if r.Method == http.MethodPut {
		perm = "storage.buckets.setIamPolicy"
	} else if r.Method != http.MethodGet {
		gcsError(w, http.StatusMethodNotAllowed, "methodNotAllowed", "use GET or PUT")
		return
	}
	if ok, err := g.allowed(principal, perm, bucket); err != nil {
		gcsError(w, http.StatusInternalServerError, "backendError", err.Error())
		return
	} else if !ok {
		denied(w, principal, need{perm, bucket})
		return
	}
	if code := g.bucketExists(r, bucket); code != http.StatusOK {
		gcsError(w, code, "notFound", "The specified bucket does not exist.")
		return
	}
	if r.Method == http.MethodGet {
		g.iamMu.Lock()
		sp, err := g.loadPolicy(bucket)
		g.iamMu.Unlock()
		if err != nil {
			gcsError(w, http.StatusInternalServerError, "backendError", err.Error())
			return
		}
		writeJSON(w, http.StatusOK, g.render(bucket, sp))
		return
	}
	var in policy
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&in); err != nil {
		gcsError(w, http.StatusBadRequest, "parseError", "Parse Error: "+err.Error())
		return
	}
	bindings := []binding{}
	for _, b := range in.Bindings {
		if _, ok := roles[b.Role]; !ok {
			gcsError(w, http.StatusBadRequest, "invalid", "Role "+b.Role+" is not supported for this resource.")
			return
		}
		for _, m := range b.Members {
			if !memberForm.MatchString(m) {
				gcsError(w, http.StatusBadRequest, "invalid", "Invalid argument: member '"+m+"' is not valid.")
				return
			}
		}
		if len(b.Members) > 0 {
			members := append([]string{}, b.Members...)
			sort.Strings(members)
			bindings = append(bindings, binding{Role: b.Role, Members: members})
		}
	}
	g.iamMu.Lock()
	defer g.iamMu.Unlock()
	sp, err := g.loadPolicy(bucket)
	if err != nil {
		gcsError(w, http.StatusInternalServerError, "backendError", err.Error())
		return
	}
	if in.Etag != "" && in.Etag != etag(sp.Revision) {
		gcsError(w, http.StatusPreconditionFailed, "conditionNotMet",
			"At least one of the pre-conditions you specified did not hold.")
		return
	}
	sp = storedPolicy{Revision: sp.Revision + 1, Bindings: bindings}
	if err := g.savePolicy(bucket, sp); err != nil {
		gcsError(w, http.StatusInternalServerError, "backendError", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, g.render(bucket, sp))
}

// bucketExists asks the emulator for the bucket; its status (200, 404) is the answer.
func (g *gateway) bucketExists(r *http.Request, bucket string) int {
	u := *g.upstream
	u.Path = "/storage/v1/b/" + bucket
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, u.String(), nil)
	if err != nil {
		return http.StatusInternalServerError
	}
	resp, err := g.client.Do(req)
	if err != nil {
		return http.StatusBadGateway
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNotFound {
		return http.StatusBadGateway
	}
	return resp.StatusCode
}

// forgetPolicy drops a deleted bucket's policy, so a bucket created again under the name starts afresh.
func (g *gateway) forgetPolicy(bucket string) {
	if !bucketName.MatchString(bucket) {
		return
	}
	g.iamMu.Lock()
	defer g.iamMu.Unlock()
	os.Remove(g.policyFile(bucket))
}
