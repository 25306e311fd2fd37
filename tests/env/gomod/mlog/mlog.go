// Package mlog is our stand-in for monis.app/mlog, a small logging helper the
// secrets-store-csi-driver imports but that the Go module proxy here refuses to serve.
// It implements only the calls the driver makes, on top of klog; the driver itself is
// built unmodified from its released module.
package mlog

import (
	"context"
	"os"

	"k8s.io/klog/v2"
)

// LogFormat selects the driver's log encoding; both are rendered by klog here.
type LogFormat string

const (
	FormatText LogFormat = "text"
	FormatJSON LogFormat = "json"
)

// Setup returns the flush function the driver defers.
func Setup() func() { return klog.Flush }

// ValidateAndSetKlogLevelAndFormatGlobally accepts any level; klog already holds it.
func ValidateAndSetKlogLevelAndFormatGlobally(_ context.Context, _ klog.Level, _ LogFormat) error {
	return nil
}

// Error logs msg with its error.
func Error(msg string, err error, keysAndValues ...any) {
	klog.ErrorS(err, msg, keysAndValues...)
}

// Fatal logs err and exits.
func Fatal(err error, keysAndValues ...any) {
	klog.ErrorS(err, "fatal", keysAndValues...)
	klog.Flush()
	os.Exit(1)
}
