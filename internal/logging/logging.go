// Package logging builds firstrun's zap logger: to stderr (or any writer), as console
// lines for people or JSON for the journal and log shippers.
package logging

import (
	"fmt"
	"io"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/firstrun/firstrun/internal/redact"
)

// Formats.
const (
	Console = "console"
	JSON    = "json"
)

// New returns a logger writing to w in format (console or json), at info level.
func New(w io.Writer, format string) (*zap.Logger, error) {
	ec := encoderConfig()
	var enc zapcore.Encoder
	switch format {
	case Console:
		ec.EncodeLevel = zapcore.CapitalLevelEncoder
		enc = zapcore.NewConsoleEncoder(ec)
	case JSON:
		enc = zapcore.NewJSONEncoder(ec)
	default:
		return nil, fmt.Errorf("log format %q: want console or json", format)
	}
	// Values that references resolved to are hidden from every line (redact.Hide).
	core := zapcore.NewCore(enc, zapcore.AddSync(redact.Writer(w)), zapcore.InfoLevel)
	return zap.New(core), nil
}

// encoderConfig is the encoding of every log line: ISO 8601 times under "time",
// durations as strings.
func encoderConfig() zapcore.EncoderConfig {
	ec := zap.NewProductionEncoderConfig()
	ec.TimeKey = "time"
	ec.EncodeTime = zapcore.ISO8601TimeEncoder
	ec.EncodeDuration = zapcore.StringDurationEncoder
	return ec
}
