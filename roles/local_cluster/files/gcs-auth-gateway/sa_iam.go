package main

// Service-account IAM, the part Workload Identity needs: a KSA annotated with
// iam.gke.io/gcp-service-account gets a token for that Google service account only when the GSA's policy
// grants the KSA roles/iam.workloadIdentityUser (as `gcloud iam service-accounts add-iam-policy-binding`
// does on GKE). POST /v1/projects/-/serviceAccounts/{email}:getIamPolicy and :setIamPolicy, the IAM API's
// shape; project owners only. Policies are kept under -data-dir/iam/serviceAccounts.

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// saRoles: the roles that can be bound on a service account here, and whether each lets a member act as it.
var saRoles = map[string]bool{
	"roles/iam.workloadIdentityUser":             true,
	"roles/iam.serviceAccountTokenCreator":       true,
	"roles/iam.serviceAccountUser":               false,
	"roles/iam.serviceAccountOpenIdTokenCreator": false,
}

func (g *gateway) saPolicyFile(email string) string {
	return filepath.Join(g.dir, "iam", "serviceAccounts", email+".json")
}

func (g *gateway) loadSAPolicy(email string) (storedPolicy, error) {
	data, err := os.ReadFile(g.saPolicyFile(email))
	if errors.Is(err, os.ErrNotExist) {
		return storedPolicy{Revision: 1}, nil
	}
	if err != nil {
		return storedPolicy{}, err
	}
	var sp storedPolicy
	if err := json.Unmarshal(data, &sp); err != nil {
		return storedPolicy{}, fmt.Errorf("%s: %w", g.saPolicyFile(email), err)
	}
	return sp, nil
}

// mayImpersonate: whether a Kubernetes ServiceAccount may act as a Google service account. Never as a
// project owner (the substrate's own account), whatever a policy says.
func (g *gateway) mayImpersonate(ns, ksa, gsa string) (bool, error) {
	if !gsaForm.MatchString(gsa) || g.isOwner("serviceAccount:"+gsa) {
		return false, nil
	}
	g.iamMu.Lock()
	sp, err := g.loadSAPolicy(gsa)
	g.iamMu.Unlock()
	if err != nil {
		return false, err
	}
	principal := g.ksaPrincipal(ns, ksa)
	for _, b := range sp.Bindings {
		if !saRoles[b.Role] {
			continue
		}
		for _, m := range b.Members {
			if m != "allUsers" && m != "allAuthenticatedUsers" && g.matches(m, principal) {
				return true, nil
			}
		}
	}
	return false, nil
}

// serviceAccountIAM serves {email}:getIamPolicy and {email}:setIamPolicy.
func (g *gateway) serviceAccountIAM(w *recorder, r *http.Request, email, verb string) {
	iamError := func(code int, status, msg string) {
		w.reason = " (" + msg + ")"
		writeJSON(w, code, map[string]any{"error": map[string]any{"code": code, "status": status, "message": msg}})
	}
	if r.Method != http.MethodPost {
		iamError(http.StatusMethodNotAllowed, "INVALID_ARGUMENT", "use POST")
		return
	}
	if !gsaForm.MatchString(email) {
		iamError(http.StatusBadRequest, "INVALID_ARGUMENT", "Invalid service account email: "+email)
		return
	}
	principal := anonymous
	if bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		if p, err := g.checkBearer(strings.TrimSpace(bearer)); err == nil {
			principal = p
		}
	}
	if principal == anonymous {
		iamError(http.StatusUnauthorized, "UNAUTHENTICATED", "Request is missing a valid access token.")
		return
	}
	perm := "iam.serviceAccounts." + verb
	if !g.isOwner(principal) {
		iamError(http.StatusForbidden, "PERMISSION_DENIED", fmt.Sprintf("Permission '%s' denied on resource "+
			"(or it may not exist).", perm))
		return
	}
	render := func(sp storedPolicy) map[string]any {
		b := sp.Bindings
		if b == nil {
			b = []binding{}
		}
		return map[string]any{"version": 1, "etag": etag(sp.Revision), "bindings": b}
	}
	g.iamMu.Lock()
	defer g.iamMu.Unlock()
	sp, err := g.loadSAPolicy(email)
	if err != nil {
		iamError(http.StatusInternalServerError, "INTERNAL", err.Error())
		return
	}
	if verb == "getIamPolicy" {
		writeJSON(w, http.StatusOK, render(sp))
		return
	}
	var in struct {
		Policy policy `json:"policy"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&in); err != nil {
		iamError(http.StatusBadRequest, "INVALID_ARGUMENT", "body is not JSON: "+err.Error())
		return
	}
	bindings := []binding{}
	for _, b := range in.Policy.Bindings {
		if _, ok := saRoles[b.Role]; !ok {
			iamError(http.StatusBadRequest, "INVALID_ARGUMENT", "Role "+b.Role+" is not supported for this resource.")
			return
		}
		for _, m := range b.Members {
			if !memberForm.MatchString(m) {
				iamError(http.StatusBadRequest, "INVALID_ARGUMENT", "Invalid member: "+m)
				return
			}
		}
		if len(b.Members) > 0 {
			members := append([]string{}, b.Members...)
			sort.Strings(members)
			bindings = append(bindings, binding{Role: b.Role, Members: members})
		}
	}
	if in.Policy.Etag != "" && in.Policy.Etag != etag(sp.Revision) {
		iamError(http.StatusConflict, "ABORTED", "There were concurrent policy changes. Please retry the whole "+
			"read-modify-write with exponential backoff.")
		return
	}
	sp = storedPolicy{Revision: sp.Revision + 1, Bindings: bindings}
	if err := os.MkdirAll(filepath.Dir(g.saPolicyFile(email)), 0o700); err != nil {
		iamError(http.StatusInternalServerError, "INTERNAL", err.Error())
		return
	}
	data, _ := json.MarshalIndent(sp, "", "  ")
	tmp := g.saPolicyFile(email) + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err == nil {
		err = os.Rename(tmp, g.saPolicyFile(email))
	}
	if err != nil {
		iamError(http.StatusInternalServerError, "INTERNAL", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, render(sp))
}
