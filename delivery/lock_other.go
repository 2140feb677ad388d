//go:build !unix

package delivery

import (
	"errors"
	"os"
)

// openNoFollow is not available here.
const openNoFollow = 0

// tryLock fails: mbox delivery needs flock(2), which only Unix systems
// have.
func tryLock(*os.File) (bool, error) {
	return false, errors.New("mbox locking is not supported on this system")
}
