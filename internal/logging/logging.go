// Package logging builds the logrus loggers every component uses: one entry
// per component, carrying a "component" field, with a format and a level
// chosen once from flags. Nothing here mutates logrus's package-global logger.
//
//	root := logging.New(logging.Options{Level: "info", Format: "text"})
//	log := logging.Component(root, "framework").WithField("app", "/web")
package logging

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/sirupsen/logrus"
)

// Options select the output, level and format of the root logger.
type Options struct {
	Level  string // panic, fatal, error, warn, info, debug, trace; default info
	Format string // text (default) or json
	Out    io.Writer
}

// New builds a root logger. It returns an error that names the bad option.
func New(o Options) (*logrus.Logger, error) {
	l := logrus.New()
	l.Out = o.Out
	if l.Out == nil {
		l.Out = os.Stderr
	}
	lvl := o.Level
	if lvl == "" {
		lvl = "info"
	}
	parsed, err := logrus.ParseLevel(lvl)
	if err != nil {
		return nil, fmt.Errorf("logging: bad level %q (want one of panic, fatal, error, warn, info, debug, trace)", lvl)
	}
	l.SetLevel(parsed)
	switch strings.ToLower(o.Format) {
	case "", "text":
		l.SetFormatter(&logrus.TextFormatter{FullTimestamp: true})
	case "json":
		l.SetFormatter(&logrus.JSONFormatter{})
	default:
		return nil, fmt.Errorf("logging: bad format %q (want text or json)", o.Format)
	}
	return l, nil
}

// Component returns the entry a component logs through.
func Component(l *logrus.Logger, name string) *logrus.Entry {
	return l.WithField("component", name)
}

// Discard is a logger for tests that do not look at log output.
func Discard() *logrus.Logger {
	l := logrus.New()
	l.Out = io.Discard
	return l
}
