package main

// The catalog file: what nginx (gcsfront/catalog.lua) needs of every object, one line each, tab-separated, with
// tab, newline and backslash escaped in every field. The first line describes the listing:
//
//	gcsfront-catalog 1 <TAB> names <TAB> main page suffix <TAB> not-found page
//
// and each object line is
//
//	name <TAB> size <TAB> ETag <TAB> Last-Modified <TAB> Content-Type <TAB> Content-Encoding <TAB>
//	Cache-Control <TAB> Content-Disposition <TAB> Content-Language
//
// ETag and Last-Modified are derived from the object alone (its MD5, else its generation, and its update time),
// so every replica sends the same ones and a conditional request gets its 304 whichever pod answers.

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"
)

// Format is the first field of the catalog's first line; catalog.lua refuses any other.
const Format = "gcsfront-catalog 1"

// Object is an item of objects.list, with only the fields the listing asks for.
type Object struct {
	Name               string `json:"name"`
	Size               string `json:"size"`
	Generation         string `json:"generation"`
	MD5Hash            string `json:"md5Hash"`
	Updated            string `json:"updated"`
	ContentType        string `json:"contentType"`
	ContentEncoding    string `json:"contentEncoding"`
	CacheControl       string `json:"cacheControl"`
	ContentDisposition string `json:"contentDisposition"`
	ContentLanguage    string `json:"contentLanguage"`
}

// Website is a bucket's website configuration (buckets.get, field website).
type Website struct {
	MainPageSuffix string `json:"mainPageSuffix"`
	NotFoundPage   string `json:"notFoundPage"`
}

var escaper = strings.NewReplacer(`\`, `\\`, "\t", `\t`, "\n", `\n`, "\r", `\r`)

func escape(s string) string { return escaper.Replace(s) }

// ETag is the object's entity tag as GCS's XML API gives it for an object with an MD5 (its hex digest, quoted);
// a composite object has none, so its generation stands in.
func ETag(o Object) string {
	if sum, err := base64.StdEncoding.DecodeString(o.MD5Hash); err == nil && len(sum) == 16 {
		return `"` + hex.EncodeToString(sum) + `"`
	}
	return `"g` + o.Generation + `"`
}

// LastModified is the object's update time as an HTTP date; empty when GCS gave none that parses.
func LastModified(o Object) string {
	t, err := time.Parse(time.RFC3339Nano, o.Updated)
	if err != nil {
		return ""
	}
	return t.UTC().Format(http.TimeFormat)
}

// Line is the object's catalog line, without its newline.
func Line(o Object) string {
	fields := []string{o.Name, o.Size, ETag(o), LastModified(o), o.ContentType, o.ContentEncoding, o.CacheControl,
		o.ContentDisposition, o.ContentLanguage}
	for i, f := range fields {
		fields[i] = escape(f)
	}
	return strings.Join(fields, "\t")
}

// Write writes the catalog of objects (sorted by name, so the same bucket always gives the same bytes) and
// returns the SHA-256 of what it wrote, hex: nginx reloads the catalog only when that changes.
func Write(w io.Writer, objects []Object, site Website) (string, error) {
	sort.Slice(objects, func(i, j int) bool { return objects[i].Name < objects[j].Name })
	h := sha256.New()
	out := io.MultiWriter(w, h)
	if _, err := fmt.Fprintf(out, "%s\t%d\t%s\t%s\n", Format, len(objects), escape(site.MainPageSuffix),
		escape(site.NotFoundPage)); err != nil {
		return "", err
	}
	for _, o := range objects {
		if _, err := io.WriteString(out, Line(o)+"\n"); err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
