// Package files is firstrun's one file writer. Renderers describe the files they want
// (File); Plan compares them with what is on disk under the root and says what would
// change (Change); Apply makes those changes durably and atomically: a temp file in
// the parent directory (never in a directory whose reader takes every file), fsync,
// rename, fsync of the directories. --dry-run and --check are
// Plan without Apply.
//
// The idea is hashicorp/consul-template's renderer (write only what differs) and the
// durable write of aws/amazon-ecs-agent's ecs-init state manager.
package files

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/firstrun/firstrun/internal/hostpath"
)

// File is a file a renderer wants. Exactly one of Content and Merge is used.
type File struct {
	// Path is the absolute host path.
	Path string
	// Mode is the permission bits the file must have. For a merged file, 0 keeps the
	// mode it has (0644 when it is created).
	Mode fs.FileMode
	// Content is the whole content, when firstrun owns the whole file.
	Content []byte
	// Merge, when set, computes the content from what is on disk (nil when the file
	// does not exist), for files firstrun shares with the user, such as ecs.config.
	// It must be pure and idempotent: Merge(Merge(x)) == Merge(x). Returning nil for a
	// file that does not exist means it is not wanted: nothing is created. An error
	// (what is on disk cannot be merged) stops the plan.
	Merge func(existing []byte) ([]byte, error)
}

// defaultMergedMode is the mode of a merged file created with Mode 0.
const defaultMergedMode fs.FileMode = 0o644

// Shared reports whether the user may own part of the file (it is merged), in which
// case firstrun never removes it.
func (f File) Shared() bool { return f.Merge != nil }

// Action is what happens, or would happen, to a file.
type Action string

// Actions.
const (
	Created   Action = "created"
	Updated   Action = "updated"
	Unchanged Action = "unchanged"
	Removed   Action = "removed"
)

// Change is one file's planned or applied change.
type Change struct {
	Path    string
	Action  Action
	Old     []byte
	New     []byte
	OldMode fs.FileMode
	Mode    fs.FileMode
}

// ModeOnly reports whether only the permission bits differ.
func (c Change) ModeOnly() bool {
	return c.Action == Updated && bytes.Equal(c.Old, c.New)
}

// Writer plans and applies changes under Root.
type Writer struct {
	Root hostpath.Root
	// rename is os.Rename; tests replace it to fail between write and rename.
	rename func(oldpath, newpath string) error
}

// NewWriter returns a Writer for root.
func NewWriter(root hostpath.Root) *Writer {
	return &Writer{Root: root, rename: os.Rename}
}

// Temp files are staged beside the target's directory, not in it: in its parent
// directory, on the same file system, so that the rename into place stays atomic. Some
// readers take every file of a directory: the CloudWatch agent's translator reads every
// file of amazon-cloudwatch-agent.d, dot files included, and `amazon-cloudwatch-agent-ctl
// -a append-config` every *.tmp file too (aws/amazon-cloudwatch-agent
// translator/cmdutil/translatorutil.go GenerateMergedJsonConfigMap); a half-written temp
// file there stops its scan. systemd reads only *.conf from drop-in directories, but
// one rule for every file is simpler. When the directory is a mount point (its parent
// is another file system) or the root, the temp file goes in the directory itself.
//
// tempSuffix ends every temp file, so that nothing that reads a directory by suffix
// (systemd units, *.json) takes one a crash left behind.
const tempSuffix = ".tmp"

// tempPrefix starts every temp file for the file named base in the directory dir
// (the directory's name is in it: http-proxy.conf is written into two drop-in
// directories with one parent).
func tempPrefix(dir, base string) string {
	return "." + filepath.Base(dir) + "." + base + ".firstrun-"
}

// legacyTempPrefix started the temp files of older firstrun versions, which wrote
// them in the target's own directory.
func legacyTempPrefix(base string) string { return "." + base + ".firstrun-" }

// stagingDir returns the directory where a temp file for a file in dir is written:
// dir's parent when it is on the same file system, else dir.
func stagingDir(dir string) string {
	parent := filepath.Dir(dir)
	if parent == dir {
		return dir
	}
	di, err1 := os.Stat(dir)
	pi, err2 := os.Stat(parent)
	if err1 != nil || err2 != nil {
		return dir
	}
	ds, ok1 := di.Sys().(*syscall.Stat_t)
	ps, ok2 := pi.Sys().(*syscall.Stat_t)
	if !ok1 || !ok2 || ds.Dev != ps.Dev {
		return dir
	}
	return parent
}

// Plan compares want, and the host paths to remove, with the disk. It reads only.
func (w *Writer) Plan(want []File, remove []string) ([]Change, error) {
	seen := map[string]bool{}
	changes := make([]Change, 0, len(want)+len(remove))
	for _, f := range want {
		if err := checkPath(f.Path); err != nil {
			return nil, err
		}
		if seen[f.Path] {
			return nil, fmt.Errorf("%s: wanted twice", f.Path)
		}
		seen[f.Path] = true
		old, oldMode, exists, err := w.read(f.Path)
		if err != nil {
			return nil, err
		}
		c := Change{Path: f.Path, Old: old, OldMode: oldMode, Mode: f.Mode.Perm()}
		c.New = f.Content
		if f.Merge != nil {
			if c.New, err = f.Merge(old); err != nil { // old is nil when the file does not exist
				return nil, fmt.Errorf("%s: %w", w.Root.Join(f.Path), err)
			}
			if !exists && c.New == nil {
				continue // not wanted, and not there
			}
			if c.Mode == 0 {
				c.Mode = oldMode
				if !exists {
					c.Mode = defaultMergedMode
				}
			}
		}
		switch {
		case !exists:
			c.Action = Created
		case bytes.Equal(old, c.New) && oldMode == c.Mode:
			c.Action = Unchanged
		default:
			c.Action = Updated
		}
		changes = append(changes, c)
	}
	for _, p := range remove {
		if err := checkPath(p); err != nil {
			return nil, err
		}
		if seen[p] {
			continue
		}
		seen[p] = true
		old, oldMode, exists, err := w.read(p)
		if err != nil {
			return nil, err
		}
		if exists {
			changes = append(changes, Change{Path: p, Action: Removed, Old: old, OldMode: oldMode})
		}
	}
	return changes, nil
}

// read returns a regular file's content and permission bits; a missing file is not an
// error. Anything else at the path (a directory, a symlink) is.
func (w *Writer) read(p string) ([]byte, fs.FileMode, bool, error) {
	real := w.Root.Join(p)
	fi, err := os.Lstat(real)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, false, nil
	}
	if err != nil {
		return nil, 0, false, fmt.Errorf("inspecting %s: %w", real, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, 0, false, fmt.Errorf("%s is a %s, not a regular file: move it away", real, kind(fi.Mode()))
	}
	data, err := os.ReadFile(real)
	if err != nil {
		return nil, 0, false, fmt.Errorf("reading %s: %w", real, err)
	}
	return data, fi.Mode().Perm(), true, nil
}

func kind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m&fs.ModeSymlink != 0:
		return "symbolic link"
	default:
		return "special file"
	}
}

func checkPath(p string) error {
	if !path.IsAbs(p) || path.Clean(p) != p || p == "/" {
		return fmt.Errorf("%q is not a clean absolute file path", p)
	}
	return nil
}

// Apply makes the changes that are not Unchanged, in order, and stops at the first
// error. Each file is replaced atomically, so a failure leaves every file either as it
// was or as wanted, never half-written.
func (w *Writer) Apply(changes []Change) error {
	for _, c := range changes {
		var err error
		switch {
		case c.Action == Unchanged:
		case c.Action == Removed:
			err = w.remove(c.Path)
		case c.ModeOnly():
			err = w.chmod(c.Path, c.Mode)
		default:
			err = w.write(c.Path, c.New, c.Mode)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (w *Writer) chmod(p string, mode fs.FileMode) error {
	real := w.Root.Join(p)
	if err := os.Chmod(real, mode); err != nil {
		return fmt.Errorf("setting mode of %s: %w", real, err)
	}
	return syncDir(filepath.Dir(real))
}

func (w *Writer) remove(p string) error {
	real := w.Root.Join(p)
	if err := os.Remove(real); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing %s: %w", real, err)
	}
	return syncDir(filepath.Dir(real))
}

// write replaces p atomically: temp file staged beside its directory (stagingDir),
// mode, content, fsync, rename into place, fsync of both directories. Temp files an
// earlier crash left for p are removed first.
func (w *Writer) write(p string, data []byte, mode fs.FileMode) (err error) {
	real := w.Root.Join(p)
	dir, base := filepath.Split(real)
	dir = filepath.Clean(dir)
	if err := mkdirAll(dir); err != nil {
		return err
	}
	stage := stagingDir(dir)
	removeStaleTemps(dir, stage, base)
	tmp, err := os.CreateTemp(stage, tempPrefix(dir, base)+"*"+tempSuffix)
	if err != nil {
		return fmt.Errorf("writing %s: %w", real, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = tmp.Chmod(mode); err != nil {
		return fmt.Errorf("writing %s: setting mode: %w", real, err)
	}
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", real, err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("writing %s: fsync: %w", real, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", real, err)
	}
	if err = w.rename(tmp.Name(), real); err != nil {
		return fmt.Errorf("writing %s: rename: %w", real, err)
	}
	if err = syncDir(dir); err != nil {
		return err
	}
	if stage != dir {
		return syncDir(stage) // the temp file's name is gone from there
	}
	return nil
}

// removeStaleTemps removes the temp files a crashed run left for base in dir: staged
// in stage, or, by older versions, in dir itself (where the CloudWatch agent's
// translator would read them). It is best effort.
func removeStaleTemps(dir, stage, base string) {
	patterns := []string{
		filepath.Join(stage, globEscape(tempPrefix(dir, base))+"*"+tempSuffix),
		filepath.Join(dir, globEscape(legacyTempPrefix(base))+"*"+tempSuffix),
	}
	for _, pat := range patterns {
		matches, _ := filepath.Glob(pat)
		for _, m := range matches {
			os.Remove(m)
		}
	}
}

func globEscape(s string) string {
	r := strings.NewReplacer(`*`, `\*`, `?`, `\?`, `[`, `\[`, `\`, `\\`)
	return r.Replace(s)
}

// mkdirAll creates dir and its missing parents (mode 0755) and fsyncs the parent of
// each directory it creates, so that a new file's path survives a crash too.
func mkdirAll(dir string) error {
	dir = filepath.Clean(dir)
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", dir)
		}
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := mkdirAll(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("creating directory %s: %w", dir, err)
	}
	return syncDir(parent)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("fsync of directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync of directory %s: %w", dir, err)
	}
	return nil
}
