package gateway

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// selfSigned writes a certificate for 127.0.0.1 and its key, and returns
// their files and a pool that trusts the certificate.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "flotilla gateway test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"shop.example.com"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// The real listeners: TLS on the external one (X-Forwarded-Proto https),
// plain HTTP on the internal one.
func TestListenersWithTLS(t *testing.T) {
	t.Parallel()
	certFile, keyFile, pool := selfSigned(t)
	g := newTestGateway(t, Config{
		ExternalAddr: "127.0.0.1:0", InternalAddr: "127.0.0.1:0",
		TLSCertFile: certFile, TLSKeyFile: keyFile,
	})
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := g.Shutdown(ctx); err != nil {
			t.Error(err)
		}
	})
	if err := g.Start(); err == nil {
		t.Fatal("second Start succeeded")
	}
	web := startBackend(t, "web.1", nil)
	big := strings.Repeat("0123456789abcdef", 64*1024) // 1 MiB: streamed, not copied whole
	dl := startBackend(t, "dl.1", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(big)))
		io.WriteString(w, big)
	})
	g.Update([]App{
		{ID: webID, DNSName: webDNS, Exposure: ext([]string{"shop.example.com"}), Backends: []Backend{web.Backend}},
		{ID: "/dl", DNSName: "dl.flotilla.mesos", Exposure: ext([]string{"dl.example.com"}), Backends: []Backend{dl.Backend}},
	})

	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "shop.example.com"}}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	cases := []struct {
		name, url, host, wantProto string
	}{
		{"external over TLS", "https://" + g.Addr(External).String() + "/", "shop.example.com", "https"},
		{"internal stays plain", "http://" + g.Addr(Internal).String() + "/", webDNS, "http"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", tc.url, nil)
			req.Host = tc.host
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("status %d %q", resp.StatusCode, b)
			}
			if e := decodeEcho(t, string(b)); e.XFProto != tc.wantProto || e.Task != "web.1" {
				t.Fatalf("backend saw %+v; want X-Forwarded-Proto %s", e, tc.wantProto)
			}
		})
	}
	// A long body streams over TLS too.
	req, _ := http.NewRequest("GET", "https://"+g.Addr(External).String()+"/file", nil)
	req.Host = "dl.example.com"
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || string(b) != big {
		t.Fatalf("download over TLS: %d, %d bytes, %v", resp.StatusCode, len(b), err)
	}
	// Plain HTTP to the TLS listener gets no route to anything.
	resp, err = (&http.Client{Timeout: 5 * time.Second}).Get("http://" + g.Addr(External).String() + "/")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("plain HTTP on the TLS listener answered %d", resp.StatusCode)
		}
	}
}

func TestRegistererRejectsSecondGateway(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	if _, err := New(Config{Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{Registerer: reg}); err == nil {
		t.Fatal("two gateways registered the same metrics on one registry")
	}
}
