package health

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// tailWindow is the most of a file's end that Tail reads.
const tailWindow = 64 << 10

// Tail returns up to n last lines of the file at path, for a diagnosis (say, the end
// of the ECS agent's log). It reads at most the last 64 KiB; a line cut by that window
// is dropped unless it is the only one. Line ends are "\n" or "\r\n" and are not
// returned. A missing file returns nil, nil; other errors are returned wrapped with
// the path.
func Tail(path string, n int) ([]string, error) {
	if n <= 0 {
		return nil, nil
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("tail %s: %w", path, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("tail %s: %w", path, err)
	}
	cut := false
	if info.Mode().IsRegular() && info.Size() > tailWindow {
		if _, err := f.Seek(info.Size()-tailWindow, io.SeekStart); err != nil {
			return nil, fmt.Errorf("tail %s: %w", path, err)
		}
		cut = true
	}
	data, err := io.ReadAll(io.LimitReader(f, tailWindow))
	if err != nil {
		return nil, fmt.Errorf("tail %s: %w", path, err)
	}
	text := string(data)
	if cut {
		if i := strings.IndexByte(text, '\n'); i >= 0 && i < len(text)-1 {
			text = text[i+1:]
		}
	}
	text = strings.TrimSuffix(text, "\n")
	if text == "" {
		return nil, nil
	}
	lines := strings.Split(text, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	for i, l := range lines {
		lines[i] = strings.TrimSuffix(l, "\r")
	}
	return lines, nil
}
