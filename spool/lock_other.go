//go:build !unix

package spool

import (
	"fmt"
	"os"
	"path/filepath"
)

// lockDir opens dir/lock; without flock(2), nothing stops a second
// process from using the same spool.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	return f, nil
}
