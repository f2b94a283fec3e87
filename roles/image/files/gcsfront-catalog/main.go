// gcsfront-catalog keeps a catalog of a bucket for the front nginx: every object's name and the metadata its
// answer carries (type, encoding, caching, ETag, Last-Modified), listed through the JSON API every interval
// (objects.list without a delimiter: one call per 1,000 names, however many directories), with the pod's own
// credentials. nginx (gcsfront/catalog.lua) answers a name missing from the catalog with 404 at once and sets
// every response's headers from it, with no FUSE or GCS call per request.
//
// Files in -dir, each replaced atomically (written aside, then renamed):
//
//	catalog.tsv  the catalog (format in catalog.go), rewritten only when the bucket changed
//	fresh        "<unix time>\t<catalog SHA-256>\t<interval s>" after every complete listing
//
// "gcsfront-catalog prune" keeps the front's hot copies in step with the catalog (prune.go).
//
// nginx trusts the catalog while fresh is at most two intervals old, and not at all without it: it is removed
// when a listing finds more than -max-names names, and when this program stops. A listing that fails (GCS
// down) leaves it as it is, so the last complete catalog serves on until it is two intervals old; then nginx
// asks the mount about every name, as it would without a catalog.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

type config struct {
	bucket, endpoint, dir        string
	interval                     time.Duration
	maxNames                     int
	mainPageSuffix, notFoundPage string
	websiteFromBucket, once      bool
	anonymous, workloadIdentity  bool
}

func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("gcsfront-catalog", flag.ContinueOnError)
	fs.StringVar(&c.bucket, "bucket", "", "the bucket (required)")
	fs.StringVar(&c.dir, "dir", "", "where catalog.tsv and fresh are written (required)")
	fs.StringVar(&c.endpoint, "endpoint", "https://storage.googleapis.com/storage/v1", "the JSON API's base URL")
	fs.DurationVar(&c.interval, "interval", 30*time.Second, "time between listings")
	fs.IntVar(&c.maxNames, "max-names", 300000, "more names than this: the catalog is not trusted")
	fs.StringVar(&c.mainPageSuffix, "main-page-suffix", "", "the object a name ending in / serves (website MainPageSuffix)")
	fs.StringVar(&c.notFoundPage, "not-found-page", "", "the object served with 404 (website NotFoundPage)")
	fs.BoolVar(&c.websiteFromBucket, "website-from-bucket", false, "take both from the bucket's website configuration")
	fs.BoolVar(&c.anonymous, "anonymous", false, "list without credentials (a public bucket)")
	fs.BoolVar(&c.workloadIdentity, "workload-identity", false, "without a key or GCE_METADATA_HOST, ask GKE's metadata server")
	fs.BoolVar(&c.once, "once", false, "list once and exit")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	switch {
	case c.bucket == "" || c.dir == "":
		return c, errors.New("-bucket and -dir are required")
	case c.interval < time.Second:
		return c, fmt.Errorf("-interval %s is under a second", c.interval)
	case c.maxNames < 1:
		return c, fmt.Errorf("-max-names %d is not a positive number", c.maxNames)
	case strings.Contains(c.mainPageSuffix, "/") || strings.HasPrefix(c.notFoundPage, "/"):
		return c, errors.New("-main-page-suffix names an object in each directory (no /), -not-found-page an object (no leading /)")
	}
	return c, nil
}

// replaceFile writes data next to path and renames it over path: a reader sees the old file or the new one.
func replaceFile(path string, write func(f *os.File) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

type keeper struct {
	config
	lister   *Lister
	lastHash string
	state    string
}

// logState logs a message once per change of state.
func (k *keeper) logState(state, format string, args ...any) {
	if k.state != state {
		log.Printf(format, args...)
	}
	k.state = state
}

func (k *keeper) listOnce(ctx context.Context) {
	began := time.Now()
	site := Website{MainPageSuffix: k.mainPageSuffix, NotFoundPage: k.notFoundPage}
	if k.websiteFromBucket {
		var err error
		if site, err = k.lister.Website(ctx); err != nil {
			k.logState("failed", "reading the bucket's website configuration failed: %v; the last complete catalog is trusted until it is two intervals old", err)
			return
		}
	}
	objects, calls, err := k.lister.List(ctx)
	fresh := filepath.Join(k.dir, "fresh")
	if errors.Is(err, ErrTooMany) {
		os.Remove(fresh)
		k.logState("overflow", "the bucket has %v names (-max-names): not trusted; every name is looked up through the mount", err)
		return
	}
	if err != nil {
		k.logState("failed", "listing gs://%s failed after %d calls: %v; the last complete catalog is trusted until it is two intervals old", k.bucket, calls, err)
		return
	}
	var hash string
	catalog := filepath.Join(k.dir, "catalog.tsv")
	err = replaceFile(catalog+".next", func(f *os.File) error {
		hash, err = Write(f, objects, site)
		return err
	})
	if err == nil && hash != k.lastHash {
		err = os.Rename(catalog+".next", catalog)
	} else {
		os.Remove(catalog + ".next")
	}
	if err == nil {
		err = replaceFile(fresh, func(f *os.File) error {
			_, err := fmt.Fprintf(f, "%d\t%s\t%d\n", time.Now().Unix(), hash, int(k.interval.Seconds()))
			return err
		})
	}
	if err != nil {
		k.logState("write-failed", "writing the catalog in %s failed: %v", k.dir, err)
		return
	}
	if hash != k.lastHash {
		log.Printf("catalog of gs://%s: %d names in %d list calls, %.1fs; main page %q, not-found page %q",
			k.bucket, len(objects), calls, time.Since(began).Seconds(), site.MainPageSuffix, site.NotFoundPage)
	}
	k.lastHash = hash
	k.logState("trusted", "the catalog is complete: names not in the bucket are answered 404 without asking GCS")
}

// nextListing is the wait before the next listing: the interval after a good one; after a failure 1 s, doubling
// up to the interval, so a pod whose first token request came too early (its address not yet known to the
// metadata server) or a bucket back from an outage is listed again within seconds.
func (k *keeper) nextListing(retry *time.Duration) time.Duration {
	if k.state == "trusted" || k.state == "overflow" { // an overflow is not listed again sooner
		*retry = time.Second
		return k.interval
	}
	wait := min(*retry, k.interval)
	*retry = min(2**retry, k.interval)
	return wait
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("gcsfront-catalog: ")
	if len(os.Args) > 1 && os.Args[1] == "prune" {
		if err := prune(os.Args[2:]); err != nil {
			log.Fatal(err)
		}
		return
	}
	c, err := parseFlags(os.Args[1:])
	if err != nil {
		log.Fatal(err)
	}
	client := &http.Client{Timeout: 30 * time.Second}
	lister := &Lister{Client: client, Endpoint: c.endpoint, Bucket: c.bucket, MaxNames: c.maxNames}
	if !c.anonymous {
		tokens, from, err := NewCredentials(client, os.Getenv, c.workloadIdentity)
		if err != nil {
			log.Fatal(err)
		}
		lister.Tokens = tokens
		log.Printf("listing gs://%s every %s through %s with %s", c.bucket, c.interval, c.endpoint, from)
	}
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		log.Fatal(err)
	}
	fresh := filepath.Join(c.dir, "fresh")
	// A restarted container finds the last run's files in its emptyDir: nothing is trusted before a listing.
	os.Remove(fresh)
	k := &keeper{config: c, lister: lister, state: "starting"}
	// The first listing of a large bucket reports as it goes.
	lister.Progress = func(names, calls int) {
		if k.lastHash == "" && calls%20 == 0 {
			log.Printf("first listing: %d names so far (%d calls)", names, calls)
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	retry := time.Second
	for {
		k.listOnce(ctx)
		if c.once {
			return
		}
		select {
		case <-ctx.Done():
			// nginx must go back to asking the mount: nothing keeps the catalog fresh any more.
			os.Remove(fresh)
			return
		case <-time.After(k.nextListing(&retry)):
		}
	}
}
