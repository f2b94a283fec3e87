package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestLineEscapesEveryField(t *testing.T) {
	o := Object{Name: "a\tb\\c\nd", Size: "10", MD5Hash: "XUFAKrxLKna5cZ2REBfFkg==", Updated: "2026-11-29T10:00:00.123Z",
		ContentType: "text/html", ContentEncoding: "gzip", CacheControl: "no-cache", ContentDisposition: "attachment",
		ContentLanguage: "en"}
	got := Line(o)
	want := `a\tb\\c\nd` + "\t10\t\"5d41402abc4b2a76b9719d911017c592\"\tSun, 29 Nov 2026 10:00:00 GMT\ttext/html\tgzip\tno-cache\tattachment\ten"
	if got != want {
		t.Fatalf("Line:\n got %q\nwant %q", got, want)
	}
}

func TestETagFallsBackToTheGeneration(t *testing.T) {
	if got := ETag(Object{Generation: "1700000000000001"}); got != `"g1700000000000001"` {
		t.Fatalf("a composite object's ETag: %s", got)
	}
}

func TestLastModifiedIsEmptyWithoutATime(t *testing.T) {
	if got := LastModified(Object{Updated: "yesterday"}); got != "" {
		t.Fatalf("LastModified of a bad time: %q", got)
	}
}

func TestWriteIsSortedAndHashedTheSameWhateverTheOrder(t *testing.T) {
	a := []Object{{Name: "b", Size: "1"}, {Name: "a", Size: "2"}}
	b := []Object{{Name: "a", Size: "2"}, {Name: "b", Size: "1"}}
	var outA, outB bytes.Buffer
	hashA, err := Write(&outA, a, Website{MainPageSuffix: "index.html", NotFoundPage: "404.html"})
	if err != nil {
		t.Fatal(err)
	}
	hashB, _ := Write(&outB, b, Website{MainPageSuffix: "index.html", NotFoundPage: "404.html"})
	if hashA != hashB || outA.String() != outB.String() {
		t.Fatalf("the same bucket listed in another order gave another catalog:\n%s\n%s", outA.String(), outB.String())
	}
	lines := strings.Split(strings.TrimSuffix(outA.String(), "\n"), "\n")
	if lines[0] != Format+"\t2\tindex.html\t404.html" || !strings.HasPrefix(lines[1], "a\t2\t") || len(lines) != 3 {
		t.Fatalf("catalog:\n%s", outA.String())
	}
	hashC, _ := Write(&bytes.Buffer{}, []Object{{Name: "a", Size: "2", ContentType: "text/plain"}, {Name: "b", Size: "1"}}, Website{MainPageSuffix: "index.html", NotFoundPage: "404.html"})
	if hashC == hashA {
		t.Fatal("a metadata change left the catalog's hash as it was")
	}
}
