// Package emftest checks embedded metric format records for tests: against the JSON
// Schema written from the specification (internal/emf/testdata/emf.schema.json) and
// against the rules a schema cannot express. The end-to-end tests use it on the records
// a run in the sandbox leaves.
package emftest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// MaxEventSize is CloudWatch Logs' limit on one event, which an EMF record is (256 KiB
// less the 26 bytes PutLogEvents counts for each event).
const MaxEventSize = 256*1024 - 26

var (
	once    sync.Once
	schema  *jsonschema.Schema
	loadErr error
)

// SchemaPath is the schema's path in the source tree.
func SchemaPath() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "testdata", "emf.schema.json")
}

func load() (*jsonschema.Schema, error) {
	once.Do(func() {
		path := SchemaPath()
		data, err := os.ReadFile(path)
		if err != nil {
			loadErr = err
			return
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
		if err != nil {
			loadErr = fmt.Errorf("%s: %w", path, err)
			return
		}
		c := jsonschema.NewCompiler()
		if err := c.AddResource("emf.schema.json", doc); err != nil {
			loadErr = err
			return
		}
		schema, loadErr = c.Compile("emf.schema.json")
	})
	return schema, loadErr
}

// Check returns every way line (one log event, its newline included or not) breaks
// the specification or the CloudWatch agent's detection of EMF, nil when it holds.
func Check(line []byte) error {
	sch, err := load()
	if err != nil {
		return fmt.Errorf("loading the schema: %w", err)
	}
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	event := bytes.TrimSuffix(line, []byte("\n"))
	if bytes.ContainsAny(event, "\r\n") {
		add("the record spans more than one line")
	}
	if len(event) > MaxEventSize {
		add("the record is %d bytes, above CloudWatch Logs' event limit", len(event))
	}
	// The CloudWatch agent's test (plugins/outputs/cloudwatchlogs/cloudwatchlogs.go,
	// cwDest.Publish): starts with {, ends with }, contains "CloudWatchMetrics".
	if !bytes.HasPrefix(event, []byte("{")) || !bytes.HasSuffix(event, []byte("}")) || !bytes.Contains(event, []byte(`"CloudWatchMetrics"`)) {
		add("the CloudWatch agent would not see an EMF record in %q", event)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(event))
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("not JSON: %w", err))...)
	}
	if err := sch.Validate(doc); err != nil {
		return errors.Join(append(errs, fmt.Errorf("breaks the schema: %w", err))...)
	}
	var rec struct {
		AWS struct {
			CloudWatchMetrics []struct {
				Namespace  string
				Dimensions [][]string
				Metrics    []struct{ Name, Unit string }
			}
		} `json:"_aws"`
	}
	if err := json.Unmarshal(event, &rec); err != nil {
		return errors.Join(append(errs, err)...)
	}
	root := doc.(map[string]any)
	for i, d := range rec.AWS.CloudWatchMetrics {
		for _, set := range d.Dimensions {
			if len(set) > 30 {
				add("directive %d: a dimension set of %d keys, above 30", i, len(set))
			}
			for _, key := range set {
				v, ok := root[key].(string)
				switch {
				case !ok:
					add("directive %d: dimension %s is not a string member of the root (%v)", i, key, root[key])
				case len(v) < 1 || len(v) > 1024 || strings.TrimSpace(v) == "" || strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r > 0x7e }):
					add("directive %d: dimension %s = %q is not 1 to 1024 printable ASCII characters", i, key, v)
				}
			}
		}
		if len(d.Metrics) > 100 {
			add("directive %d: %d metrics, above 100", i, len(d.Metrics))
		}
		seen := map[string]bool{}
		for _, m := range d.Metrics {
			if seen[m.Name] {
				add("directive %d: metric %s twice", i, m.Name)
			}
			seen[m.Name] = true
			if !isNumberOrNumbers(root[m.Name]) {
				add("directive %d: metric %s is not a number member of the root (%v)", i, m.Name, root[m.Name])
			}
		}
	}
	return errors.Join(errs...)
}

// isNumberOrNumbers reports whether v is a number, or an array of at most 100 numbers
// (the specification's two forms of a metric's value).
func isNumberOrNumbers(v any) bool {
	switch v := v.(type) {
	case json.Number:
		return true
	case []any:
		if len(v) == 0 || len(v) > 100 {
			return false
		}
		for _, e := range v {
			if _, ok := e.(json.Number); !ok {
				return false
			}
		}
		return true
	}
	return false
}
