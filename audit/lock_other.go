//go:build !unix

package audit

import (
	"errors"
	"os"
)

// lockFile fails: the file sink needs flock(2) to keep a second writer out,
// and without it a trail could be interleaved by two processes.
func lockFile(*os.File) error {
	return errors.New("file locking is not supported on this platform")
}
