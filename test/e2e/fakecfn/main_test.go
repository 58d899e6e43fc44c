package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	os.WriteFile(good, []byte(`{"region":"eu-west-1","rate":10,"burst":20,"stacks":[{"name":"s","status":"CREATE_COMPLETE","resources":[{"logical_id":"ASG","status":"CREATE_COMPLETE"}]}]}`), 0o644)
	cfg, err := load(good)
	if err != nil || cfg.Region != "eu-west-1" || cfg.Rate != 10 || cfg.Burst != 20 || len(cfg.Stacks) != 1 || cfg.Stacks[0].Resources[0].LogicalID != "ASG" {
		t.Errorf("load: %+v, %v", cfg, err)
	}
	typo := filepath.Join(dir, "typo.json")
	os.WriteFile(typo, []byte(`{"stack":[]}`), 0o644)
	if _, err := load(typo); err == nil || !strings.Contains(err.Error(), "unknown field") {
		t.Errorf("a typo was accepted: %v", err)
	}
	if _, err := load(filepath.Join(dir, "none.json")); err == nil {
		t.Error("a missing file was accepted")
	}
}

// Each request is recorded with its answer, one JSON object a line.
func TestRecordsEachRequest(t *testing.T) {
	cfg, _ := load(writeFile(t, `{"stacks":[{"name":"s","status":"CREATE_COMPLETE","resources":[{"logical_id":"ASG","status":"CREATE_COMPLETE"}]}]}`))
	logPath := filepath.Join(t.TempDir(), "requests.jsonl")
	h, err := newHandler(cfg, logPath)
	if err != nil {
		t.Fatal(err)
	}
	form := url.Values{"Action": {"SignalResource"}, "Version": {"2010-05-15"}, "StackName": {"s"}, "LogicalResourceId": {"ASG"}, "UniqueId": {"i-1"}, "Status": {"SUCCESS"}}
	for range 2 {
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		h.ServeHTTP(httptest.NewRecorder(), r)
	}
	b, _ := os.ReadFile(logPath)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines recorded, want 2:\n%s", len(lines), b)
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil || rec["unique_id"] != "i-1" || rec["answer"] != "MissingAuthenticationToken" {
		t.Errorf("record %s (%v): want unique_id i-1 answered MissingAuthenticationToken (unsigned)", lines[0], err)
	}
}

func writeFile(t *testing.T, s string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.json")
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
