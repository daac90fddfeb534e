package audit

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Files returns the files of the trail at path, oldest first: its rotated
// segments <path>.1, <path>.2, … in ascending order (the file sink rotates
// the live file into the next free number, so a higher number is newer),
// then path itself when it exists. Other files beside it (.key, .pub,
// .lock, .partial-…) are not part of the trail.
func Files(path string) ([]string, error) {
	nums, err := segments(path)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(nums)+1)
	for _, n := range nums {
		out = append(out, segmentPath(path, n))
	}
	switch _, err := os.Stat(path); {
	case err == nil:
		out = append(out, path)
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("audit: %s: %w", path, fs.ErrNotExist)
	}
	return out, nil
}

func segmentPath(path string, n int) string { return path + "." + strconv.Itoa(n) }

// segments lists the numbers of path's rotated segments, ascending.
func segments(path string) ([]int, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var nums []int
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), base+".")
		if !ok || rest == "" || len(rest) > 9 || rest[0] == '0' || !e.Type().IsRegular() {
			continue
		}
		n, err := strconv.Atoi(rest)
		if err != nil || strconv.Itoa(n) != rest {
			continue
		}
		nums = append(nums, n)
	}
	slices.Sort(nums)
	return nums, nil
}
