package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// connectionOf parses args as berth's global flags with env as the
// environment and returns the cli they configure.
func connectionOf(t *testing.T, env map[string]string, args ...string) *cli {
	t.Helper()
	c := &cli{in: strings.NewReader(""), out: io.Discard, err: io.Discard,
		lookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}
	root := newRootCommand(c)
	if err := root.ParseFlags(args); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestDockerHostIsReadAfterBerthHost(t *testing.T) {
	d := newFakeDaemon(t)
	d.answerRaw("GET /networks", "[]")
	runBerth("", map[string]string{dockerHostEnv: d.host}, "network", "ls", "-q").expect(t, "", "", 0)
	d.onlyCall("GET", "/networks")
	runBerth("", map[string]string{hostEnv: "unix:///nonexistent/berth.sock", dockerHostEnv: d.host}, "network", "ls").expect(t, "",
		"Cannot connect to the berth daemon at unix:///nonexistent/berth.sock. Is the berth daemon running?\n", 1)
}

func TestTCPHostsAreCompletedAsDockerCompletesThem(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{nil, []string{"-H", "tcp://10.0.0.1:4000"}, "tcp://10.0.0.1:4000"},
		{nil, []string{"-H", "tcp://10.0.0.1"}, "tcp://10.0.0.1:2375"},
		{nil, []string{"-H", "10.0.0.1"}, "tcp://10.0.0.1:2375"},
		{nil, []string{"-H", "tcp://:2380"}, "tcp://127.0.0.1:2380"},
		{nil, []string{"-H", "tcp://[::1]"}, "tcp://[::1]:2375"},
		{nil, []string{"-H", "unix:///run/x.sock", "--tlsverify"}, "unix:///run/x.sock"},
		{map[string]string{dockerHostEnv: "tcp://10.0.0.2", tlsVerifyEnv: "1", certPathEnv: "/nonexistent"}, nil, "tcp://10.0.0.2:2376"},
		{nil, []string{"-H", "tcp://10.0.0.1", "--tls"}, "tcp://10.0.0.1:2376"},
	} {
		host, _, _ := connectionOf(t, c.env, c.args...).endpoint()
		if host != c.want {
			t.Errorf("env %v args %v: host %q, want %q", c.env, c.args, host, c.want)
		}
	}
	for _, bad := range []string{"ssh://x", "tcp://10.0.0.1:99999", "tcp://10.0.0.1/path", "/run/berth.sock"} {
		if _, _, err := connectionOf(t, nil, "-H", bad).endpoint(); err == nil || !strings.Contains(err.Error(), "invalid host") {
			t.Errorf("-H %s: %v, want an invalid host error", bad, err)
		}
	}
}

func TestTLSFollowsTheDockerCLIsFlagsAndEnvironment(t *testing.T) {
	certs := writeClientCerts(t)
	empty := t.TempDir()
	for _, c := range []struct {
		why        string
		env        map[string]string
		args       []string
		tls        bool
		verify     bool
		clientCert bool
	}{
		{"nothing asked", nil, nil, false, false, false},
		{"DOCKER_TLS_VERIFY and DOCKER_CERT_PATH", map[string]string{tlsVerifyEnv: "1", certPathEnv: certs}, nil, true, true, true},
		{"DOCKER_TLS_VERIFY=0 still verifies, as with docker", map[string]string{tlsVerifyEnv: "0", certPathEnv: certs}, nil, true, true, true},
		{"DOCKER_TLS", map[string]string{tlsEnv: "1", certPathEnv: certs}, nil, true, false, true},
		{"--tls", map[string]string{certPathEnv: certs}, []string{"--tls"}, true, false, true},
		{"--tlsverify=false means TLS without verification", map[string]string{certPathEnv: certs}, []string{"--tlsverify=false"}, true, false, true},
		{"--tlsverify=false overrides DOCKER_TLS_VERIFY", map[string]string{tlsVerifyEnv: "1", certPathEnv: certs}, []string{"--tlsverify=false"}, true, false, true},
		{"the certificate files by flag", nil, []string{"--tlsverify", "--tlscacert", filepath.Join(certs, "ca.pem"),
			"--tlscert", filepath.Join(certs, "cert.pem"), "--tlskey", filepath.Join(certs, "key.pem")}, true, true, true},
		{"DOCKER_CONFIG is the default certificate directory", map[string]string{configEnv: certs}, []string{"--tlsverify"}, true, true, true},
		{"no client certificate where the default files are missing", map[string]string{certPathEnv: empty}, []string{"--tls"}, true, false, false},
	} {
		args := append([]string{"-H", "tcp://10.0.0.1"}, c.args...)
		_, cfg, err := connectionOf(t, c.env, args...).endpoint()
		if err != nil {
			t.Errorf("%s: %v", c.why, err)
			continue
		}
		if (cfg != nil) != c.tls {
			t.Errorf("%s: TLS %v, want %v", c.why, cfg != nil, c.tls)
			continue
		}
		if cfg == nil {
			continue
		}
		if cfg.InsecureSkipVerify == c.verify || (c.verify && cfg.RootCAs == nil) {
			t.Errorf("%s: server verification %v (roots %v), want %v", c.why, !cfg.InsecureSkipVerify, cfg.RootCAs != nil, c.verify)
		}
		if (len(cfg.Certificates) == 1) != c.clientCert {
			t.Errorf("%s: %d client certificates, want one: %v", c.why, len(cfg.Certificates), c.clientCert)
		}
	}
	// Verification without the CA's file is an error, not a silent
	// fallback to the system's roots.
	_, _, err := connectionOf(t, map[string]string{tlsVerifyEnv: "1", certPathEnv: empty}, "-H", "tcp://10.0.0.1").endpoint()
	if err == nil || !strings.Contains(err.Error(), filepath.Join(empty, "ca.pem")) {
		t.Errorf("DOCKER_TLS_VERIFY without ca.pem: %v", err)
	}
}

// writeClientCerts writes ca.pem, cert.pem and key.pem, docker's names, to
// a new directory.
func writeClientCerts(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	for name, data := range map[string][]byte{
		"ca.pem": certPEM, "cert.pem": certPEM,
		"key.pem": pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
