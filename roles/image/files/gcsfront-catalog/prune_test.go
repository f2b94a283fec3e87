package main

import (
	"crypto/md5"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func copyName(name, value, extension string) string {
	sum := md5.Sum([]byte(name + "\n" + value))
	digest := hex.EncodeToString(sum[:])
	return filepath.Join(digest[:2], digest+extension)
}

func writeCopy(t *testing.T, dir, rel string, size int) string {
	t.Helper()
	path := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(strings.Repeat("x", size)), 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond) // distinct ctimes: the order copies were stored in
	return path
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func TestPruneKeepsWhatTheCatalogNamesWithinTheSize(t *testing.T) {
	tmp := t.TempDir()
	catalog, dir := filepath.Join(tmp, "catalog.tsv"), filepath.Join(tmp, "mirror")
	a := "10\t\"aa\"\tSun, 29 Nov 2026 10:00:00 GMT\ttext/html\t\t\t\t"
	b := "20\t\"bb\"\tSun, 29 Nov 2026 10:00:00 GMT\t\t\t\t\t"
	odd := "5\t\"cc\"\tSun, 29 Nov 2026 10:00:00 GMT\ttext/plain\t\t\t\t"
	lines := Format + "\t3\tindex.html\t\n" + "a\t" + a + "\n" + "b.txt\t" + b + "\n" + `tab\there` + "\t" + odd + "\n"
	if err := os.WriteFile(catalog, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	oldA := writeCopy(t, dir, copyName("a", strings.Replace(a, "aa", "old", 1), ""), 10) // a's previous version
	keptA := writeCopy(t, dir, copyName("a", a, ""), 10)
	keptB := writeCopy(t, dir, copyName("b.txt", b, ".txt"), 20)
	keptOdd := writeCopy(t, dir, copyName("tab\there", odd, ""), 5) // the name unescaped, as nginx has it
	aside := writeCopy(t, dir, "set-aside", 7)
	misplaced := writeCopy(t, dir, filepath.Join("00", filepath.Base(keptA)), 10)

	result, err := Prune(catalog, dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if result != (PruneResult{Unnamed: 3, Kept: 3, KeptBytes: 35}) {
		t.Fatalf("Prune: %+v", result)
	}
	for _, gone := range []string{oldA, aside, misplaced} {
		if exists(gone) {
			t.Errorf("%s is still there", gone)
		}
	}
	for _, kept := range []string{keptA, keptB, keptOdd} {
		if !exists(kept) {
			t.Errorf("%s was deleted", kept)
		}
	}

	// Beyond the size, the copies stored first go first.
	result, err = Prune(catalog, dir, 26)
	if err != nil {
		t.Fatal(err)
	}
	if result != (PruneResult{Oldest: 1, Kept: 2, KeptBytes: 25}) || exists(keptA) || !exists(keptB) || !exists(keptOdd) {
		t.Fatalf("Prune to 26 bytes: %+v, a kept %v", result, exists(keptA))
	}
}

func TestPruneWithoutACatalogDeletesNothing(t *testing.T) {
	tmp := t.TempDir()
	kept := writeCopy(t, tmp, "ab/abcdef", 3)
	if _, err := Prune(filepath.Join(tmp, "missing.tsv"), tmp, 0); err == nil || !exists(kept) {
		t.Fatalf("Prune without a catalog: err %v, copy kept %v", err, exists(kept))
	}
	if err := os.WriteFile(filepath.Join(tmp, "bad.tsv"), []byte("something else\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Prune(filepath.Join(tmp, "bad.tsv"), tmp, 0); err == nil || !strings.Contains(err.Error(), "is not a") || !exists(kept) {
		t.Fatalf("Prune with a foreign file: err %v", err)
	}
}

func TestPruneCommandChecksItsFlags(t *testing.T) {
	if err := prune([]string{"-dir", t.TempDir()}); err == nil || !strings.Contains(err.Error(), "-catalog and -dir are required") {
		t.Fatalf("prune without -catalog: %v", err)
	}
}
