package main

// The Kubernetes API, asked with the gateway's own ServiceAccount token: which pod has an address,
// and which Google service account its KSA names.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

type kubeResolver struct {
	api       string // https://host:port
	tokenFile string // re-read on every call: the kubelet rotates projected tokens
	client    *http.Client
}

// newKubeResolver talks to api (empty: the in-cluster address from KUBERNETES_SERVICE_HOST/PORT),
// trusting caFile ("" trusts the system roots).
func newKubeResolver(api, tokenFile, caFile string) (*kubeResolver, error) {
	if api == "" {
		host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
		if host == "" || port == "" {
			return nil, errors.New("-kube-api is empty and KUBERNETES_SERVICE_HOST/PORT are not set")
		}
		api = "https://" + strings.Trim(host, "[]") + ":" + port
		if strings.Contains(host, ":") {
			api = "https://[" + strings.Trim(host, "[]") + "]:" + port
		}
	}
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("Kubernetes CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("Kubernetes CA: no certificate in %s", caFile)
		}
		tlsConf.RootCAs = pool
	}
	return &kubeResolver{api: strings.TrimRight(api, "/"), tokenFile: tokenFile, client: &http.Client{
		Timeout:   4 * time.Second, // under the 5 s clients give a metadata request
		Transport: &http.Transport{Proxy: nil, TLSClientConfig: tlsConf},
	}}, nil
}

func (k *kubeResolver) get(ctx context.Context, path string, v any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.api+path, nil)
	if err != nil {
		return 0, err
	}
	if k.tokenFile != "" {
		token, err := os.ReadFile(k.tokenFile)
		if err != nil {
			return 0, fmt.Errorf("ServiceAccount token: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	}
	req.Header.Set("Accept", "application/json")
	resp, err := k.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return resp.StatusCode, jsonDecode(resp, v)
}

type podList struct {
	Items []struct {
		Metadata struct {
			Name              string  `json:"name"`
			Namespace         string  `json:"namespace"`
			DeletionTimestamp *string `json:"deletionTimestamp"`
		} `json:"metadata"`
		Spec struct {
			ServiceAccountName string `json:"serviceAccountName"`
			HostNetwork        bool   `json:"hostNetwork"`
		} `json:"spec"`
		Status struct {
			Phase string `json:"phase"`
			PodIP string `json:"podIP"`
		} `json:"status"`
	} `json:"items"`
}

// identify lists the pods whose status.podIP is ip (a field selector the API server indexes) and
// reads the ServiceAccount of the one running there. Pods on the host network share the node's
// address and are never identified.
func (k *kubeResolver) identify(ctx context.Context, ip string) (caller, error) {
	var pods podList
	q := url.Values{"fieldSelector": {"status.podIP=" + ip}}
	if _, err := k.get(ctx, "/api/v1/pods?"+q.Encode(), &pods); err != nil {
		return caller{}, err
	}
	var found []caller
	for _, p := range pods.Items {
		if p.Spec.HostNetwork || p.Status.PodIP != ip || (p.Status.Phase != "Running" && p.Status.Phase != "Pending") {
			continue
		}
		ksa := p.Spec.ServiceAccountName
		if ksa == "" {
			ksa = "default"
		}
		found = append(found, caller{Namespace: p.Metadata.Namespace, Pod: p.Metadata.Name, KSA: ksa})
	}
	if len(found) != 1 {
		if len(found) > 1 {
			return caller{}, fmt.Errorf("%w: %d pods claim %s", errUnknownCaller, len(found), ip)
		}
		return caller{}, errUnknownCaller
	}
	c := found[0]
	var sa struct {
		Metadata struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"metadata"`
	}
	code, err := k.get(ctx, "/api/v1/namespaces/"+url.PathEscape(c.Namespace)+"/serviceaccounts/"+url.PathEscape(c.KSA), &sa)
	if code == http.StatusNotFound {
		return caller{}, fmt.Errorf("%w: its ServiceAccount %s/%s does not exist", errUnknownCaller, c.Namespace, c.KSA)
	}
	if err != nil {
		return caller{}, err
	}
	c.GSA = strings.TrimSpace(sa.Metadata.Annotations[gsaAnnotation])
	return c, nil
}
