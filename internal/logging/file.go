package logging

import (
	"fmt"
	"io"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/firstrun/firstrun/internal/hostpath"
	"github.com/firstrun/firstrun/internal/logfile"
	"github.com/firstrun/firstrun/internal/redact"
)

// FileCore returns a core writing JSON lines, at info level, to firstrun's own log
// file (hostpath.FirstrunLog under root, bounded by internal/logfile), and the file to
// close at the end of the run. Secrets are redacted in the fields before any core sees
// them, so the file holds what stderr shows.
func FileCore(root hostpath.Root) (zapcore.Core, io.Closer, error) {
	f, err := logfile.Open(root.Join(hostpath.FirstrunLog), logfile.MaxSize, logfile.Mode)
	if err != nil {
		return nil, nil, fmt.Errorf("firstrun's log file: %w", err)
	}
	return zapcore.NewCore(zapcore.NewJSONEncoder(encoderConfig()), zapcore.AddSync(redact.Writer(f)), zapcore.InfoLevel), f, nil
}

// WithFile returns log writing also to firstrun's own log file under root (see
// FileCore), and the file to close at the end of the run.
func WithFile(log *zap.Logger, root hostpath.Root) (*zap.Logger, io.Closer, error) {
	core, f, err := FileCore(root)
	if err != nil {
		return log, nil, err
	}
	return log.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core { return zapcore.NewTee(c, core) })), f, nil
}
