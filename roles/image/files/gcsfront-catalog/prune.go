package main

// Hot copies: the front nginx stores an object it fetched as the catalog lists it as a plain file (proxy_store;
// gcsfront-catalog.lua's mirror_file) named <xx>/<md5>[.<extension>], where <md5> is the hex MD5 of the object's
// name, a newline and its catalog line after the name, and <xx> its first two digits. A changed object or
// changed metadata gives another name, so a copy never outlives its version; Prune deletes the copies the
// catalog no longer names, and the oldest copies (by the time they were stored) beyond a size.

import (
	"bufio"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

var unescaper = strings.NewReplacer(`\\`, `\`, `\t`, "\t", `\n`, "\n", `\r`, "\r")

// CopyDigests are the digests of the hot copies a catalog names (catalog.lua computes the same).
func CopyDigests(catalogPath string) (map[string]bool, error) {
	f, err := os.Open(catalogPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	scanner := bufio.NewScanner(f)
	scanner.Buffer(make([]byte, 64*1024), 16*1024*1024)
	if !scanner.Scan() || !strings.HasPrefix(scanner.Text(), Format+"\t") {
		return nil, fmt.Errorf("%s is not a %s file", catalogPath, Format)
	}
	digests := map[string]bool{}
	for scanner.Scan() {
		name, value, ok := strings.Cut(scanner.Text(), "\t")
		if !ok {
			return nil, fmt.Errorf("%s has a line without fields", catalogPath)
		}
		sum := md5.Sum([]byte(unescaper.Replace(name) + "\n" + value))
		digests[hex.EncodeToString(sum[:])] = true
	}
	return digests, scanner.Err()
}

type hotCopy struct {
	path   string
	size   int64
	stored int64 // ctime, ns: when the copy was renamed into place
}

// PruneResult says what Prune did.
type PruneResult struct {
	Unnamed, Oldest, Kept int
	KeptBytes            int64
}

// Prune deletes the files under dir that are not hot copies named by the catalog, then the oldest copies until
// the rest take at most maxBytes. A file that vanishes meanwhile (nginx replaced it) is no error.
func Prune(catalogPath, dir string, maxBytes int64) (PruneResult, error) {
	var result PruneResult
	digests, err := CopyDigests(catalogPath)
	if err != nil {
		return result, err
	}
	var kept []hotCopy
	err = filepath.WalkDir(dir, func(path string, entry os.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		if entry.IsDir() {
			return nil
		}
		digest, _, _ := strings.Cut(entry.Name(), ".")
		info, err := entry.Info()
		if err != nil {
			return nil // gone
		}
		if filepath.Dir(path) == filepath.Join(dir, digest[:min(2, len(digest))]) && digests[digest] {
			stat, _ := info.Sys().(*syscall.Stat_t)
			stored := info.ModTime().UnixNano()
			if stat != nil {
				stored = stat.Ctim.Nano()
			}
			kept = append(kept, hotCopy{path: path, size: info.Size(), stored: stored})
			result.KeptBytes += info.Size()
			return nil
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		result.Unnamed++
		return nil
	})
	if err != nil {
		return result, err
	}
	sort.Slice(kept, func(i, j int) bool { return kept[i].stored < kept[j].stored })
	for _, c := range kept {
		if result.KeptBytes <= maxBytes {
			break
		}
		if err := os.Remove(c.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return result, err
		}
		result.KeptBytes -= c.size
		result.Oldest++
	}
	result.Kept = len(kept) - result.Oldest
	return result, nil
}

// prune is the "prune" command: one pass of Prune, run by the serving container's entrypoint.
func prune(args []string) error {
	fs := flag.NewFlagSet("gcsfront-catalog prune", flag.ContinueOnError)
	catalog := fs.String("catalog", "", "the catalog file (catalog.tsv) that names the copies to keep (required)")
	dir := fs.String("dir", "", "the hot copies' directory (required)")
	maxMB := fs.Int64("max-size-mb", 1024, "the most the copies may take, in MiB")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *catalog == "" || *dir == "" || *maxMB < 0 {
		return errors.New("prune: -catalog and -dir are required, -max-size-mb is not negative")
	}
	result, err := Prune(*catalog, *dir, *maxMB<<20)
	if err != nil {
		return fmt.Errorf("pruning the hot copies in %s: %w", *dir, err)
	}
	if result.Unnamed+result.Oldest > 0 {
		fmt.Fprintf(os.Stderr, "gcsfront-catalog: hot copies: deleted %d the catalog no longer names and %d beyond %d MiB; %d kept (%.1f MiB)\n",
			result.Unnamed, result.Oldest, *maxMB, result.Kept, float64(result.KeptBytes)/(1<<20))
	}
	return nil
}
