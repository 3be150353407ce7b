package ops

import (
	"io"
	"os"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/term"
)

// Log formats accepted by NewLogger.
const (
	// LogJSON writes one JSON object per line (for log collectors).
	LogJSON = "json"
	// LogConsole writes human-readable, coloured lines.
	LogConsole = "console"
	// LogAuto is console on a terminal, JSON otherwise.
	LogAuto = ""
)

// DefaultLogLevel is the level of NewLogger when none is given.
const DefaultLogLevel = zerolog.InfoLevel

// NewLogger returns the process logger writing to w: format LogJSON, LogConsole
// or LogAuto ("": console when w is a terminal), at level ("debug", "info",
// "warn", "error"; "" = info), with timestamps. An unknown format or level falls
// back to the default and the logger's first event says so. Packages never log
// tokens or secrets; keep it that way when adding events.
func NewLogger(w io.Writer, format, level string) zerolog.Logger {
	var warnings []string
	format = strings.ToLower(strings.TrimSpace(format))
	switch format {
	case LogJSON, LogConsole:
	case LogAuto, "auto":
		format = LogJSON
		if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			format = LogConsole
		}
	default:
		warnings = append(warnings, "unknown log format "+format+" (want json or console); using json")
		format = LogJSON
	}
	if format == LogConsole {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
	}
	lvl := DefaultLogLevel
	if level = strings.TrimSpace(level); level != "" {
		l, err := zerolog.ParseLevel(strings.ToLower(level))
		if err != nil || l == zerolog.NoLevel {
			warnings = append(warnings, "unknown log level "+level+" (want debug, info, warn or error); using info")
		} else {
			lvl = l
		}
	}
	log := zerolog.New(w).Level(lvl).With().Timestamp().Logger()
	for _, m := range warnings {
		log.Warn().Msg(m)
	}
	return log
}
