package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseFlagsRefusesBadInput(t *testing.T) {
	for _, args := range [][]string{
		{"-dir", "/tmp/x"},
		{"-bucket", "b", "-dir", "/tmp/x", "-interval", "10ms"},
		{"-bucket", "b", "-dir", "/tmp/x", "-max-names", "0"},
		{"-bucket", "b", "-dir", "/tmp/x", "-main-page-suffix", "a/index.html"},
		{"-bucket", "b", "-dir", "/tmp/x", "-not-found-page", "/404.html"},
	} {
		if _, err := parseFlags(args); err == nil {
			t.Errorf("accepted %v", args)
		}
	}
}

func TestKeeperRewritesTheCatalogOnlyWhenTheBucketChanged(t *testing.T) {
	srv, _ := fakeGCS(t, 1500, "")
	dir := t.TempDir()
	k := &keeper{config: config{bucket: "my bucket", dir: dir, interval: 30 * time.Second, mainPageSuffix: "index.html"},
		lister: &Lister{Client: srv.Client(), Endpoint: srv.URL + "/storage/v1", Bucket: "my bucket", MaxNames: 2000}}
	k.listOnce(context.Background())
	catalog := filepath.Join(dir, "catalog.tsv")
	first, err := os.Stat(catalog)
	if err != nil {
		t.Fatal(err)
	}
	fresh, _ := os.ReadFile(filepath.Join(dir, "fresh"))
	if f := strings.Split(strings.TrimSpace(string(fresh)), "\t"); len(f) != 3 || len(f[1]) != 64 || f[2] != "30" {
		t.Fatalf("fresh: %q", fresh)
	}
	k.listOnce(context.Background())
	second, _ := os.Stat(catalog)
	if !os.SameFile(first, second) {
		t.Fatal("an unchanged bucket rewrote the catalog")
	}
	// More names than allowed: not trusted at once.
	k.lister.MaxNames = 1000
	k.listOnce(context.Background())
	if _, err := os.Stat(filepath.Join(dir, "fresh")); !os.IsNotExist(err) {
		t.Fatal("an overflowing bucket left the catalog trusted")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("files left behind: %v", entries)
	}
}

func TestAFailedListingKeepsTheLastCatalog(t *testing.T) {
	srv, _ := fakeGCS(t, 10, "")
	dir := t.TempDir()
	k := &keeper{config: config{bucket: "my bucket", dir: dir, interval: time.Second},
		lister: &Lister{Client: srv.Client(), Endpoint: srv.URL + "/storage/v1", Bucket: "my bucket", MaxNames: 100}}
	k.listOnce(context.Background())
	before, _ := os.ReadFile(filepath.Join(dir, "fresh"))
	srv.Close()
	k.listOnce(context.Background())
	after, err := os.ReadFile(filepath.Join(dir, "fresh"))
	if err != nil || string(after) != string(before) || k.state != "failed" {
		t.Fatalf("state %s, fresh %q -> %q (%v)", k.state, before, after, err)
	}
}

func TestAFailedListingIsRetriedSoonerThanTheInterval(t *testing.T) {
	k := &keeper{config: config{interval: 30 * time.Second}, state: "failed"}
	retry := time.Second
	var waits []time.Duration
	for i := 0; i < 7; i++ {
		waits = append(waits, k.nextListing(&retry))
	}
	want := []time.Duration{1, 2, 4, 8, 16, 30, 30}
	for i := range want {
		if waits[i] != want[i]*time.Second {
			t.Fatalf("waits after failures: %v", waits)
		}
	}
	k.state = "trusted"
	if k.nextListing(&retry) != 30*time.Second || retry != time.Second {
		t.Fatalf("after a good listing: the interval, and the backoff starts again")
	}
}
