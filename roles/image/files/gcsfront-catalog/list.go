package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// The fields of objects.list the catalog needs: a page of 1,000 names stays small.
const listFields = "nextPageToken,items(name,size,generation,md5Hash,updated,contentType,contentEncoding," +
	"cacheControl,contentDisposition,contentLanguage)"

// PageSize is objects.list's maxResults: GCS's largest page.
const PageSize = 1000

// ErrTooMany is returned when the bucket holds more names than the catalog may.
var ErrTooMany = errors.New("too many names")

// Lister reads a bucket through the JSON API.
type Lister struct {
	Client   *http.Client
	Endpoint string // the JSON API's base, e.g. https://storage.googleapis.com/storage/v1
	Bucket   string
	Tokens   *TokenSource // nil: anonymous requests
	MaxNames int
	// Progress, if set, is called after each page with the names so far (long listings report as they go).
	Progress func(names, calls int)
}

type listPage struct {
	NextPageToken string   `json:"nextPageToken"`
	Items         []Object `json:"items"`
}

// get GETs endpoint path?query and decodes the JSON answer into v.
func (l *Lister) get(ctx context.Context, path string, query url.Values, v any) error {
	u := strings.TrimSuffix(l.Endpoint, "/") + path + "?" + query.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	if l.Tokens != nil {
		token, err := l.Tokens.Token(ctx)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := l.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, strings.TrimSpace(string(body)))
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("GET %s: the answer is not JSON: %w", path, err)
	}
	return nil
}

// List returns every object of the bucket (objects.list without a delimiter: one call per PageSize names,
// whatever the directory layout) and the number of calls it took.
func (l *Lister) List(ctx context.Context) ([]Object, int, error) {
	var objects []Object
	calls := 0
	query := url.Values{"maxResults": {fmt.Sprint(PageSize)}, "projection": {"noAcl"}, "fields": {listFields}}
	path := "/b/" + url.PathEscape(l.Bucket) + "/o"
	for {
		var page listPage
		calls++
		if err := l.get(ctx, path, query, &page); err != nil {
			return nil, calls, err
		}
		for _, o := range page.Items {
			// A name that ends in / is a folder placeholder: nothing a website serves.
			if o.Name != "" && !strings.HasSuffix(o.Name, "/") {
				objects = append(objects, o)
			}
		}
		if l.MaxNames > 0 && len(objects) > l.MaxNames {
			return nil, calls, fmt.Errorf("%w: more than %d", ErrTooMany, l.MaxNames)
		}
		if l.Progress != nil {
			l.Progress(len(objects), calls)
		}
		if page.NextPageToken == "" {
			return objects, calls, nil
		}
		query.Set("pageToken", page.NextPageToken)
	}
}

// Website returns the bucket's website configuration (buckets.get, field website).
func (l *Lister) Website(ctx context.Context) (Website, error) {
	var bucket struct {
		Website Website `json:"website"`
	}
	err := l.get(ctx, "/b/"+url.PathEscape(l.Bucket), url.Values{"fields": {"website"}}, &bucket)
	return bucket.Website, err
}
