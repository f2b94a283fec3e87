package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fakeGCS serves objects.list pages of n objects (and one folder placeholder) and buckets.get, counting calls.
func fakeGCS(t *testing.T, n int, token string) (*httptest.Server, *int) {
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if token != "" && r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, `{"error":{"code":401}}`, http.StatusUnauthorized)
			return
		}
		switch r.URL.EscapedPath() {
		case "/storage/v1/b/my%20bucket":
			fmt.Fprint(w, `{"website":{"mainPageSuffix":"index.htm","notFoundPage":"missing.html"}}`)
		case "/storage/v1/b/my%20bucket/o":
			calls++
			q := r.URL.Query()
			if q.Get("maxResults") != "1000" || !strings.Contains(q.Get("fields"), "contentEncoding") || q.Has("delimiter") {
				t.Errorf("list query: %v", q)
			}
			start, _ := strconv.Atoi(q.Get("pageToken"))
			page := listPage{}
			for i := start; i < n && i < start+1000; i++ {
				page.Items = append(page.Items, Object{Name: fmt.Sprintf("dir%03d/file%06d.txt", i%100, i), Size: "5"})
			}
			if start == 0 {
				page.Items = append(page.Items, Object{Name: "dir000/"})
			}
			if start+1000 < n {
				page.NextPageToken = strconv.Itoa(start + 1000)
			}
			json.NewEncoder(w).Encode(page)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

func staticTokens(token string) *TokenSource {
	return &TokenSource{now: time.Now, fetch: func(context.Context) (string, time.Duration, error) {
		return token, time.Hour, nil
	}}
}

func TestListTakesOneCallPerThousandNamesAndSkipsFolders(t *testing.T) {
	srv, calls := fakeGCS(t, 2500, "tok")
	l := &Lister{Client: srv.Client(), Endpoint: srv.URL + "/storage/v1/", Bucket: "my bucket", Tokens: staticTokens("tok"), MaxNames: 10000}
	objects, n, err := l.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(objects) != 2500 || n != 3 || *calls != 3 {
		t.Fatalf("%d objects in %d calls (server saw %d)", len(objects), n, *calls)
	}
}

func TestListRefusesMoreThanMaxNames(t *testing.T) {
	srv, _ := fakeGCS(t, 2500, "")
	l := &Lister{Client: srv.Client(), Endpoint: srv.URL + "/storage/v1", Bucket: "my bucket", MaxNames: 1500}
	if _, _, err := l.List(context.Background()); !errors.Is(err, ErrTooMany) {
		t.Fatalf("err = %v", err)
	}
}

func TestListReportsARefusal(t *testing.T) {
	srv, _ := fakeGCS(t, 10, "right")
	l := &Lister{Client: srv.Client(), Endpoint: srv.URL + "/storage/v1", Bucket: "my bucket", Tokens: staticTokens("wrong")}
	if _, _, err := l.List(context.Background()); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("err = %v", err)
	}
}

func TestWebsite(t *testing.T) {
	srv, _ := fakeGCS(t, 0, "")
	l := &Lister{Client: srv.Client(), Endpoint: srv.URL + "/storage/v1", Bucket: "my bucket"}
	site, err := l.Website(context.Background())
	if err != nil || site != (Website{MainPageSuffix: "index.htm", NotFoundPage: "missing.html"}) {
		t.Fatalf("%+v %v", site, err)
	}
}
