// Package standin holds what the sandbox's stand-ins of AWS APIs (fakecfn,
// fakesecrets) share around the stand-in itself: reading its configuration file
// strictly, and appending each request it got to a file the tests read.
package standin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"sync"
)

// Load reads a JSON configuration file into a T; unknown fields are an error, so that
// a typo does not silently leave something out.
func Load[T any](path string) (T, error) {
	var cfg T
	b, err := os.ReadFile(path)
	if err != nil {
		return cfg, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return cfg, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// Recorder appends each request's record to the file at Path, one JSON object a line;
// a failure is said on stderr with Name, and the stand-in goes on.
type Recorder[T any] struct {
	Name string
	Path string
	mu   sync.Mutex
}

// Record appends req to the file.
func (r *Recorder[T]) Record(req T) {
	line, _ := json.Marshal(req)
	r.mu.Lock()
	defer r.mu.Unlock()
	f, err := os.OpenFile(r.Path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err == nil {
		_, err = f.Write(append(line, '\n'))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: recording a request: %v\n", r.Name, err)
	}
}
