package main

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func do(t *testing.T, h http.Handler, method, url string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, url, nil))
	b, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(b)
}

func TestEndpoints(t *testing.T) {
	now := time.Unix(1000, 0)
	h := newMux("web.1", "h1", 10*time.Second, func() time.Time { return now })

	if code, body := do(t, h, "GET", "/"); code != 200 || body != "web.1 h1\n" {
		t.Fatalf("/ = %d %q", code, body)
	}
	if code, _ := do(t, h, "GET", "/nope"); code != http.StatusNotFound {
		t.Fatalf("/nope = %d, want 404", code)
	}
	if code, _ := do(t, h, "GET", "/ready"); code != http.StatusServiceUnavailable {
		t.Fatalf("/ready before ready-after = %d, want 503", code)
	}
	now = now.Add(10 * time.Second)
	if code, _ := do(t, h, "GET", "/ready"); code != 200 {
		t.Fatalf("/ready after ready-after = %d, want 200", code)
	}
	if code, _ := do(t, h, "GET", "/health"); code != 200 {
		t.Fatalf("/health = %d, want 200", code)
	}
	if code, _ := do(t, h, "POST", "/health?healthy=false"); code != http.StatusServiceUnavailable {
		t.Fatalf("switch to unhealthy answered %d, want 503", code)
	}
	if code, _ := do(t, h, "GET", "/health"); code != http.StatusServiceUnavailable {
		t.Fatalf("/health after switch = %d, want 503", code)
	}
	if code, _ := do(t, h, "POST", "/health?healthy=maybe"); code != http.StatusBadRequest {
		t.Fatalf("bad health switch answered %d, want 400", code)
	}
	if code, _ := do(t, h, "GET", "/burn?millicores=0&seconds=1"); code != http.StatusBadRequest {
		t.Fatalf("bad burn answered %d, want 400", code)
	}
	if code, body := do(t, h, "POST", "/metrics?queue=7"); code != 200 || !strings.Contains(body, "testapp_queue_depth 7") {
		t.Fatalf("/metrics = %d %q", code, body)
	}
}

func TestEnvHashNeverShowsTheValue(t *testing.T) {
	const value = "s3cr3t-canary-value"
	t.Setenv("TESTAPP_CANARY", value)
	h := newMux("", "", 0, time.Now)
	code, body := do(t, h, "GET", "/envhash?name=TESTAPP_CANARY")
	sum := sha256.Sum256([]byte(value))
	if code != 200 || strings.TrimSpace(body) != hex.EncodeToString(sum[:]) {
		t.Fatalf("/envhash = %d %q, want the sha256 of the value", code, body)
	}
	if strings.Contains(body, value) {
		t.Fatal("/envhash leaked the value")
	}
	if code, _ := do(t, h, "GET", "/envhash?name=TESTAPP_UNSET_VAR"); code != http.StatusNotFound {
		t.Fatalf("/envhash of an unset var = %d, want 404", code)
	}
}

func TestEchoServers(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go serveTCPEcho(ln)
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("hello tcp")); err != nil {
		t.Fatal(err)
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c) // ends only if the server half-closes back
	if err != nil || string(got) != "hello tcp" {
		t.Fatalf("tcp echo = %q, %v; want %q then EOF", got, err, "hello tcp")
	}

	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go serveUDPEcho(pc)
	u, err := net.Dial("udp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	if _, err := u.Write([]byte("hello udp")); err != nil {
		t.Fatal(err)
	}
	if err := u.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, err := u.Read(buf)
	if err != nil || string(buf[:n]) != "hello udp" {
		t.Fatalf("udp echo = %q, %v", buf[:n], err)
	}
}
