package store

import (
	"fmt"
	"log/slog"
)

// natsLogger gives the embedded NATS server's own messages to the relay's
// log: its warnings and errors (a disk running full, a damaged file found
// and repaired at start, a write that failed) are things an administrator
// must see; its notices (the start-up banner) are debug lines.
type natsLogger struct{ log *slog.Logger }

func (l natsLogger) Noticef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l natsLogger) Warnf(format string, v ...any)   { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l natsLogger) Errorf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l natsLogger) Fatalf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l natsLogger) Debugf(string, ...any)           {}
func (l natsLogger) Tracef(string, ...any)           {}
