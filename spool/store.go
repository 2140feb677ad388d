package spool

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vsl-milter/vsl-milter/internal/durable"
	"github.com/vsl-milter/vsl-milter/policy"
)

// The queue directories below Options.Dir.
const (
	QueueIncoming = "incoming" // accepted; the rules after the queue have not run
	QueueWorking  = "working"  // due now or being processed
	QueueDeferred = "deferred" // waiting for the next attempt
	// QueueDelegated holds the messages handed to a delegate directive's
	// filter, until they come back (or the delegation is given up).
	QueueDelegated = "delegated"
	QueueDead      = "dead" // finished with failures, kept for the administrator
)

// queues lists the queue directories; all but dead are scheduled by Open.
var queues = [...]string{QueueIncoming, QueueWorking, QueueDeferred, QueueDelegated, QueueDead}

// tmpDir is the scratch directory below Options.Dir, emptied by Open.
const tmpDir = "tmp"

// The files of a message directory.
const (
	fileMessage  = "message.eml"   // the message as accepted; never changed
	fileEnvelope = "envelope.json" // the transaction as accepted; never changed
	fileState    = "state.json"    // what was done and what is left; replaced atomically
	fileFinal    = "final.eml"     // the message as the rules left it, when they changed it
	// The files of a delegated message (see delegated.go).
	fileDelegation = "delegation.json" // the pending delegation; replaced atomically
	fileDelegated  = "delegated.eml"   // the message as handed to the filter
	fileReturned   = "returned.eml"    // the message as the filter sent it back
	tmpSuffix      = ".tmp"            // a file being written; removed at recovery
)

// envelope is envelope.json: the transaction as the SMTP server accepted it.
type envelope struct {
	Saved      policy.Saved `json:"saved"`
	EnqueuedAt time.Time    `json:"enqueued_at"`
	// Kind is kindDSN for a delivery status notification the spool made.
	Kind string `json:"kind,omitempty"`
}

// kindDSN marks a DSN's envelope: only the delivery stage runs on it.
const kindDSN = "dsn"

// The statuses of a recipient in state.json.
const (
	statusPending   = "pending"   // still to deliver (never tried, or a temporary failure)
	statusDelivered = "delivered" // the transport said the copy is durable
	statusFailed    = "failed"    // permanently failed, or given up after the last retry
)

// state is state.json: the progress of a message, written (atomically,
// fsynced) after each step so that a restart redoes as little as possible
// and never forgets a recipient.
type state struct {
	// Planned: the postq and delivery rules have run and Rcpts is their
	// delivery plan; they never run again for this message.
	Planned bool `json:"planned"`
	// Modified: final.eml holds the message as the rules left it (else
	// message.eml is delivered as is).
	Modified bool `json:"modified,omitempty"`
	// From is the envelope sender after the rules (the Return-Path, and
	// the recipient of a DSN).
	From policy.MailAddr `json:"from"`
	// Rcpts are the recipients and what became of them. Before the plan
	// (a rules run that failed temporarily) they are the accepted ones.
	Rcpts []rcptState `json:"rcpts"`
	// Attempts counts the rounds that ended with a temporary failure.
	Attempts    int       `json:"attempts"`
	LastAttempt time.Time `json:"last_attempt,omitzero"`
	NextAttempt time.Time `json:"next_attempt,omitzero"`
	// Dead says why the message went to the dead queue.
	Dead string `json:"dead,omitempty"`
	// DSN is the id of the delivery status notification sent for it.
	DSN string `json:"dsn,omitempty"`
}

// rcptState is one recipient of state.json.
type rcptState struct {
	Rcpt      policy.MailAddr `json:"rcpt"`
	Transport string          `json:"transport"`
	Target    string          `json:"target,omitempty"`
	Status    string          `json:"status"`
	At        time.Time       `json:"at,omitzero"` // when the status was last set
	Failure   *failure        `json:"failure,omitempty"`
}

// failure is the last failure of a recipient.
type failure struct {
	Temporary bool   `json:"temporary"`
	Code      int    `json:"code,omitempty"`     // the SMTP reply code, when a server or the rules answered
	Enhanced  string `json:"enhanced,omitempty"` // the reply's own enhanced status code, if it had one
	Status    string `json:"status"`             // the enhanced status code (RFC 3463) for the DSN
	Reply     string `json:"reply,omitempty"`    // the reply's text
	Error     string `json:"error"`              // what went wrong, for logs and the DSN's text
	Remote    string `json:"remote,omitempty"`   // the host that answered
}

// message is a message directory as loaded by a worker.
type message struct {
	id    string
	queue string
	env   envelope
	st    state
}

// path returns the path of a queue directory, or of a message in one.
func (s *Spool) path(queue string, elem ...string) string {
	return filepath.Join(append([]string{s.opts.Dir, queue}, elem...)...)
}

// file returns the path of one of m's files.
func (s *Spool) file(m *message, name string) string { return s.path(m.queue, m.id, name) }

// errCorrupt marks a message directory that is not what the spool
// writes (a file missing or undecodable): it can never be processed.
var errCorrupt = errors.New("corrupt message directory")

// load reads the envelope and state of the message id in queue. A missing
// directory is fs.ErrNotExist, a damaged one errCorrupt; other errors
// (such as too many open files) may pass.
func (s *Spool) load(queue, id string) (*message, error) {
	m := &message{id: id, queue: queue}
	if _, err := os.Stat(s.path(queue, id)); err != nil {
		return nil, fmt.Errorf("message directory: %w", err)
	}
	corrupt := func(what string, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w: %s: %w", errCorrupt, what, err)
		}
		return fmt.Errorf("%s: %w", what, err)
	}
	b, err := os.ReadFile(s.file(m, fileEnvelope))
	if err != nil {
		return nil, corrupt("read envelope", err)
	}
	if err := json.Unmarshal(b, &m.env); err != nil {
		return nil, fmt.Errorf("%w: decode envelope %s: %w", errCorrupt, s.file(m, fileEnvelope), err)
	}
	if _, err := os.Stat(s.file(m, fileMessage)); err != nil {
		return nil, corrupt("message file", err)
	}
	b, err = os.ReadFile(s.file(m, fileState))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// Not processed yet.
		m.st.From = m.env.Saved.MailFrom
	case err != nil:
		return nil, fmt.Errorf("read state: %w", err)
	default:
		if err := json.Unmarshal(b, &m.st); err != nil {
			return nil, fmt.Errorf("%w: decode state %s: %w", errCorrupt, s.file(m, fileState), err)
		}
	}
	if m.st.Planned && m.st.Modified {
		if _, err := os.Stat(s.file(m, fileFinal)); err != nil {
			return nil, corrupt("final message file", err)
		}
	}
	return m, nil
}

// saveState replaces m's state.json durably.
func (s *Spool) saveState(m *message) error {
	b, err := json.MarshalIndent(&m.st, "", "  ")
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	return replaceFile(s.path(m.queue, m.id), fileState, b)
}

// move renames m's directory into queue and makes the change durable.
func (s *Spool) move(m *message, queue string) error {
	if m.queue == queue {
		return nil
	}
	from := s.path(m.queue)
	if err := os.Rename(s.path(m.queue, m.id), s.path(queue, m.id)); err != nil {
		return fmt.Errorf("move %s from %s to %s: %w", m.id, m.queue, queue, err)
	}
	s.counted(m.queue, -1)
	s.counted(queue, +1)
	m.queue = queue
	if err := durable.SyncDir(s.path(queue)); err != nil {
		return err
	}
	return durable.SyncDir(from)
}

// remove deletes m's directory: it is renamed out of its queue at once
// (durably), then removed below tmp/, which Open empties should the
// removal be cut short.
func (s *Spool) remove(m *message) error {
	trash := filepath.Join(s.opts.Dir, tmpDir, m.id+".removed."+randomHex(4))
	if err := os.Rename(s.path(m.queue, m.id), trash); err != nil {
		return fmt.Errorf("remove %s from %s: %w", m.id, m.queue, err)
	}
	err := durable.SyncDir(s.path(m.queue))
	if rerr := os.RemoveAll(trash); err == nil && rerr != nil {
		err = fmt.Errorf("remove %s: %w", trash, rerr)
	}
	s.counted(m.queue, -1)
	s.forget(m.id)
	return err
}

// create writes a new message directory under tmp/ and renames it into
// incoming/: the message is in the spool, complete, once this returns nil.
func (s *Spool) create(id string, env envelope, msg []byte) error {
	b, err := json.MarshalIndent(&env, "", "  ")
	if err != nil {
		return fmt.Errorf("encode envelope: %w", err)
	}
	dir := filepath.Join(s.opts.Dir, tmpDir, id)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return fmt.Errorf("create message directory: %w", err)
	}
	done := false
	defer func() {
		if !done {
			os.RemoveAll(dir)
		}
	}()
	if err := writeFileSync(filepath.Join(dir, fileMessage), msg); err != nil {
		return err
	}
	if err := writeFileSync(filepath.Join(dir, fileEnvelope), b); err != nil {
		return err
	}
	if err := durable.SyncDir(dir); err != nil {
		return err
	}
	if err := os.Rename(dir, s.path(QueueIncoming, id)); err != nil {
		return fmt.Errorf("move into incoming: %w", err)
	}
	done = true
	return durable.SyncDir(s.path(QueueIncoming))
}

// writeFileSync creates path (which must not exist) with data, fsynced.
func writeFileSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	return writeSyncClose(f, data)
}

// writeSyncClose writes the slices of data to f one after the other (so
// that content made of parts is not copied into one buffer first), fsyncs
// and closes it.
func writeSyncClose(f *os.File, data ...[]byte) error {
	var err error
	for _, d := range data {
		if _, err = f.Write(d); err != nil {
			break
		}
	}
	if err != nil {
		err = fmt.Errorf("write %s: %w", f.Name(), err)
	} else if err = f.Sync(); err != nil {
		err = fmt.Errorf("sync %s: %w", f.Name(), err)
	}
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close %s: %w", f.Name(), cerr)
	}
	return err
}

// replaceFile replaces dir/name with data atomically and durably: the
// data is written to a temporary file, fsynced, renamed over name, and dir
// is fsynced. A reader sees the old content or the new, never a mix.
func replaceFile(dir, name string, data []byte) error {
	if err := writeTemp(dir, name, data); err != nil {
		return err
	}
	if err := os.Rename(filepath.Join(dir, name+tmpSuffix), filepath.Join(dir, name)); err != nil {
		return fmt.Errorf("rename into %s: %w", name, err)
	}
	return durable.SyncDir(dir)
}

// writeTemp writes the slices of data, one after the other, to
// dir/name.tmp, fsynced, replacing a leftover.
func writeTemp(dir, name string, data ...[]byte) error {
	f, err := os.OpenFile(filepath.Join(dir, name+tmpSuffix), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("create temporary file: %w", err)
	}
	return writeSyncClose(f, data...)
}

// mkdirSync creates dir and its missing parents with mode 0700, fsyncing
// the parent of each directory it creates.
func mkdirSync(dir string) error {
	dir = filepath.Clean(dir)
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", dir)
		}
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := mkdirSync(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil
		}
		return fmt.Errorf("create directory: %w", err)
	}
	return durable.SyncDir(parent)
}

// validID reports whether id can name a message directory: 1 to 64
// letters, digits, '-' or '_' (ids the spool makes itself may add ".dsn").
func validID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// dsnID is the id of the DSN sent for the message id. The '.' cannot
// appear in other ids, so it names that DSN alone.
func dsnID(id string) string { return id + ".dsn" }

// validStoredID reports whether a directory name found in a queue is one
// the spool made.
func validStoredID(name string) bool {
	return validID(strings.TrimSuffix(name, ".dsn"))
}

// randomHex returns n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
