package cluster

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
)

func TestEmbeddedMemberOverTLSAcceptsOnlyCertifiedHosts(t *testing.T) {
	files := writeCerts(t)
	ports := freePorts(t, 2)
	cfg := testConfig(t, "host-a")
	cfg.Embedded, cfg.DataDir, cfg.ClientPort, cfg.PeerPort = true, filepath.Join(t.TempDir(), "etcd"), ports[0], ports[1]
	cfg.TLS = files
	a := open(t, cfg)
	endpoint := fmt.Sprintf("127.0.0.1:%d", ports[0])

	bcfg := testConfig(t, "host-b", endpoint)
	bcfg.TLS = files
	b := open(t, bcfg)
	if err := b.Register(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	c := a.Watch(ctxT(t), HostsPrefix)
	waitReady(t, c)
	waitFor(t, 2*time.Second, "host b's record seen by a", func() bool { _, ok := c.Get(HostsPrefix + "host-b"); return ok })

	for _, tc := range []struct {
		name, says string
		tls        TLSFiles
	}{
		{"without a client certificate", "certificate required", TLSFiles{CA: files.CA}},
		{"without TLS", "no answer within 1s", TLSFiles{}},
	} {
		name := tc.name
		cfg := testConfig(t, "host-c", endpoint)
		cfg.TLS, cfg.ReadyTimeout = tc.tls, time.Second
		s, err := Open(ctxT(t), cfg)
		if err == nil {
			s.Close()
			t.Errorf("a host %s joined", name)
			continue
		}
		if !errdefs.IsUnavailable(err) || !strings.Contains(err.Error(), endpoint) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("a host %s: %v", name, err)
		}
	}
}

// writeCerts writes a CA and a certificate it signed for 127.0.0.1, good
// for servers and clients alike.
func writeCerts(t *testing.T) TLSFiles {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "berth test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "berth host"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	f := TLSFiles{CA: filepath.Join(dir, "ca.pem"), Cert: filepath.Join(dir, "cert.pem"), Key: filepath.Join(dir, "key.pem")}
	for path, block := range map[string]*pem.Block{
		f.CA: {Type: "CERTIFICATE", Bytes: caDER}, f.Cert: {Type: "CERTIFICATE", Bytes: leafDER}, f.Key: {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return f
}
