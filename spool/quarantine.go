package spool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vsl-milter/vsl-milter/internal/durable"
	"github.com/vsl-milter/vsl-milter/policy"
)

// quarantineRecord is the <id>.json written next to a quarantined message.
type quarantineRecord struct {
	Quarantine    string       `json:"quarantine"`
	QuarantinedAt time.Time    `json:"quarantined_at"`
	Saved         policy.Saved `json:"saved"`
}

// Quarantine holds a message the rules quarantined, never to be delivered
// by the spool: it writes AppDir/<name>/<id>.eml (the message) and
// <id>.json (the envelope), each fsynced and renamed into place, the
// directory fsynced. The id is saved.MessageID when that is a valid file
// name, so quarantining a message again (after a crash) rewrites the same
// files. name becomes one path element: characters other than letters,
// digits, '-', '_' and '.' are written '_', and a leading '.' too, so no
// name can reach outside AppDir. The SMTP server calls it for a
// quarantine at preq, before its 250; the spool for one after the queue.
func (s *Spool) Quarantine(ctx context.Context, name string, saved policy.Saved, message []byte) error {
	id := saved.MessageID
	if !validID(id) {
		id = policy.NewMessageID()
	}
	return s.quarantine(ctx, name, id, saved, message)
}

// quarantine writes the files of a quarantined message under id.
func (s *Spool) quarantine(ctx context.Context, name, id string, saved policy.Saved, message []byte) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("spool: quarantine: %w", err)
	}
	if s.opts.AppDir == "" {
		return errors.New("spool: quarantine: no application directory (app.dirpath) configured")
	}
	dir := filepath.Join(s.opts.AppDir, quarantineDir(name))
	if err := mkdirSync(dir); err != nil {
		return fmt.Errorf("spool: quarantine: %w", err)
	}
	rec, err := json.MarshalIndent(quarantineRecord{Quarantine: name, QuarantinedAt: time.Now().UTC(), Saved: saved}, "", "  ")
	if err != nil {
		return fmt.Errorf("spool: quarantine: encode envelope: %w", err)
	}
	// Both files are complete before either name appears; the message
	// comes last, so a reader that finds <id>.eml finds its envelope.
	for _, f := range []struct {
		name string
		data []byte
	}{{id + ".json", rec}, {id + ".eml", message}} {
		if err := writeTemp(dir, "."+f.name, f.data); err != nil {
			return fmt.Errorf("spool: quarantine: %w", err)
		}
	}
	for _, f := range []string{id + ".json", id + ".eml"} {
		if err := os.Rename(filepath.Join(dir, "."+f+tmpSuffix), filepath.Join(dir, f)); err != nil {
			return fmt.Errorf("spool: quarantine: %w", err)
		}
	}
	if err := durable.SyncDir(dir); err != nil {
		return fmt.Errorf("spool: quarantine: %w", err)
	}
	return nil
}

// quarantineDir turns a quarantine's name into one safe path element.
func quarantineDir(name string) string {
	name = strings.TrimSpace(name)
	if name == "" {
		return "quarantine"
	}
	b := []byte(name)
	if len(b) > 128 {
		b = b[:128]
	}
	for i, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			b[i] = '_'
		}
	}
	if b[0] == '.' {
		b[0] = '_'
	}
	return string(b)
}
