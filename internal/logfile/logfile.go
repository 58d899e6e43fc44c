// Package logfile appends lines to a log file of firstrun's own, kept bounded across
// reruns: when a write would take the file past MaxSize, the file is renamed to
// NAME.1 (replacing the previous generation) and a new one is started. At most two
// generations exist, so the file never grows without bound.
//
// These are append-only logs, not configuration: they do not go through
// internal/files (whose writes replace whole files and are planned and diffed).
//
// Crash safety: the file is opened O_APPEND, so each Write lands whole at the end even
// when two firstrun processes append at once (a run and firstrun-health.service); and a
// file whose last line was cut off by a crash gets a newline before the first new line,
// so that a torn line never swallows the next record (each line of the metrics file
// must stay one JSON object for the CloudWatch agent's EMF detection).
package logfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
)

// Defaults for firstrun's log files.
const (
	// MaxSize bounds one generation: 1 MiB holds hundreds of runs' logs.
	MaxSize = 1 << 20
	// Mode is the files' mode: the CloudWatch agent and awslogs read them as root, and
	// nobody else needs them (an operator has journalctl and firstrun --check).
	Mode fs.FileMode = 0o600
	// DirMode is the mode of the directory created for them.
	DirMode fs.FileMode = 0o750
)

// File is an append-only, size-bounded log file; it is a zapcore.WriteSyncer. Its
// methods are safe for concurrent use.
type File struct {
	mu   sync.Mutex
	path string
	max  int64
	mode fs.FileMode
	f    *os.File
}

// Open opens (creating it and its directory) the log file at path, bounded at max
// bytes a generation, with mode (applied to an existing file too).
func Open(path string, max int64, mode fs.FileMode) (*File, error) {
	if max <= 0 {
		return nil, fmt.Errorf("log file %s: size bound %d must be above zero", path, max)
	}
	if err := os.MkdirAll(filepath.Dir(path), DirMode); err != nil {
		return nil, fmt.Errorf("log file %s: %w", path, err)
	}
	l := &File{path: path, max: max, mode: mode}
	if err := l.open(); err != nil {
		return nil, err
	}
	return l, nil
}

// open opens l.path for appending, enforces the mode and ends a torn last line.
func (l *File) open() error {
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, l.mode)
	if err != nil {
		return fmt.Errorf("log file: %w", err)
	}
	if err := f.Chmod(l.mode); err != nil {
		f.Close()
		return fmt.Errorf("log file: %w", err)
	}
	if err := endTornLine(l.path, f); err != nil {
		f.Close()
		return fmt.Errorf("log file %s: %w", l.path, err)
	}
	l.f = f
	return nil
}

// endTornLine appends a newline to f when the file at path is not empty and does not
// end with one (a write cut off by a crash).
func endTornLine(path string, f *os.File) error {
	r, err := os.Open(path)
	if err != nil {
		return err
	}
	defer r.Close()
	st, err := r.Stat()
	if err != nil || st.Size() == 0 {
		return err
	}
	last := make([]byte, 1)
	if _, err := r.ReadAt(last, st.Size()-1); err != nil {
		return err
	}
	if last[0] != '\n' {
		_, err = f.Write([]byte{'\n'})
	}
	return err
}

// Write appends p in one write(2), first rotating when p would take the file past the
// bound (a file that is empty takes p whatever its size).
func (l *File) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return 0, fmt.Errorf("log file %s: %w", l.path, fs.ErrClosed)
	}
	st, err := l.f.Stat()
	if err != nil {
		return 0, fmt.Errorf("log file %s: %w", l.path, err)
	}
	if st.Size() > 0 && st.Size()+int64(len(p)) > l.max {
		if err := l.rotate(st); err != nil {
			return 0, err
		}
	}
	n, err := l.f.Write(p)
	if err != nil {
		return n, fmt.Errorf("log file %s: %w", l.path, err)
	}
	return n, nil
}

// rotate renames the file to NAME.1 and opens a new one. When another process has
// rotated it already (the path is another file than the one open), it only reopens.
func (l *File) rotate(open fs.FileInfo) error {
	cur, err := os.Stat(l.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("log file %s: %w", l.path, err)
	case os.SameFile(cur, open):
		if err := os.Rename(l.path, l.path+".1"); err != nil {
			return fmt.Errorf("log file %s: rotating: %w", l.path, err)
		}
	}
	if err := l.f.Close(); err != nil {
		return fmt.Errorf("log file %s: %w", l.path, err)
	}
	l.f = nil
	return l.open()
}

// Sync flushes the file to disk.
func (l *File) Sync() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	if err := l.f.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("log file %s: %w", l.path, err)
	}
	return nil
}

// Close syncs and closes the file; later writes fail.
func (l *File) Close() error {
	if err := l.Sync(); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// Append opens the log file at path, appends p in one write, syncs and closes it: for
// a record written once a run (the metrics).
func Append(path string, max int64, mode fs.FileMode, p []byte) (err error) {
	l, err := Open(path, max, mode)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := l.Close(); err == nil {
			err = cerr
		}
	}()
	_, err = l.Write(p)
	return err
}

var _ io.WriteCloser = (*File)(nil)
