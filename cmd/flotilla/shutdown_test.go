package main

import (
	"context"
	"errors"
	"testing"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
)

// TestShutdownNotCleanIsLogged: a DNS or gateway listener that does not
// stop cleanly at shutdown (connections cut off, a socket that failed to
// close) is logged naming the component and the error; its Shutdown's
// error was dropped by a bare defer.
func TestShutdownNotCleanIsLogged(t *testing.T) {
	l, hook := logtest.NewNullLogger()
	cut := errors.New("mesosdns: shutdown tcp: 3 connections cut off")
	called := false
	shutdown(l, "dns", func(context.Context) error { called = true; return cut })
	if !called {
		t.Fatal("the listener's Shutdown was not called")
	}
	e := hook.LastEntry()
	if e == nil {
		t.Fatal("a shutdown that was not clean is not logged")
	}
	if e.Level != logrus.WarnLevel || e.Data["component"] != "dns" || e.Data[logrus.ErrorKey] != cut {
		t.Errorf("logged %v %q %v; want a warning naming the dns component and its error", e.Level, e.Message, e.Data)
	}
	hook.Reset()
	shutdown(l, "gateway", func(context.Context) error { return nil })
	if n := len(hook.AllEntries()); n != 0 {
		t.Errorf("a clean shutdown logged %d lines", n)
	}
}
