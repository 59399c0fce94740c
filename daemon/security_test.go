package daemon_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/berth-net/berth/daemon"
	"github.com/berth-net/berth/internal/nettest"
)

// certAuthority is a CA made for one test.
type certAuthority struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newCertAuthority(t *testing.T, name string) *certAuthority {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &certAuthority{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue writes a certificate signed by the CA and its key to
// dir/<name>-cert.pem and dir/<name>-key.pem: a server's for ips, or a
// client's when ips is empty.
func (ca *certAuthority) issue(t *testing.T, dir, name string, ips ...net.IP) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if len(ips) > 0 {
		tmpl.ExtKeyUsage, tmpl.IPAddresses, tmpl.DNSNames = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, ips, []string{"localhost"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+"-cert.pem"), filepath.Join(dir, name+"-key.pem")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "EC PRIVATE KEY", keyDER)
	return certFile, keyFile
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// tlsFiles are a daemon's TLS files and the client certificate
// directories docker's DOCKER_CERT_PATH names (ca.pem, cert.pem, key.pem).
type tlsFiles struct {
	ca, serverCert, serverKey string
	// good holds a client certificate of the daemon's CA; rogue one of
	// another CA (with the daemon's CA as ca.pem, so only the client
	// certificate is wrong); anonymous none.
	good, rogue, anonymous string
}

func newTLSFiles(t *testing.T, serverIPs ...net.IP) tlsFiles {
	t.Helper()
	dir := t.TempDir()
	ca, other := newCertAuthority(t, "berth test CA"), newCertAuthority(t, "another CA")
	f := tlsFiles{ca: filepath.Join(dir, "ca.pem")}
	if err := os.WriteFile(f.ca, ca.pem, 0o644); err != nil {
		t.Fatal(err)
	}
	f.serverCert, f.serverKey = ca.issue(t, dir, "server", serverIPs...)
	for _, c := range []struct {
		dir    *string
		name   string
		issuer *certAuthority
	}{{&f.good, "good", ca}, {&f.rogue, "rogue", other}, {&f.anonymous, "anonymous", nil}} {
		*c.dir = filepath.Join(dir, c.name)
		if err := os.Mkdir(*c.dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(*c.dir, "ca.pem"), ca.pem, 0o644); err != nil {
			t.Fatal(err)
		}
		if c.issuer == nil {
			continue
		}
		cert, key := c.issuer.issue(t, dir, c.name)
		for from, to := range map[string]string{cert: "cert.pem", key: "key.pem"} {
			if err := os.Rename(from, filepath.Join(*c.dir, to)); err != nil {
				t.Fatal(err)
			}
		}
	}
	return f
}

// daemonArgs are berthd's flags for mutual TLS with these files.
func (f tlsFiles) daemonArgs() []string {
	return []string{"--tlsverify", "--tlscacert", f.ca, "--tlscert", f.serverCert, "--tlskey", f.serverKey}
}

// sdkClient is the Docker Go SDK's client for host with the certificates
// of certDir (none when ""), dialing from inside ns.
func sdkClient(t *testing.T, ns *nettest.Namespace, host, certDir string) *client.Client {
	t.Helper()
	opts := []client.Opt{client.WithHost(host), client.WithAPIVersionNegotiation()}
	if certDir != "" {
		cert, key := filepath.Join(certDir, "cert.pem"), filepath.Join(certDir, "key.pem")
		if _, err := os.Stat(cert); err != nil {
			cert, key = "", ""
		}
		opts = append(opts, client.WithTLSClientConfig(filepath.Join(certDir, "ca.pem"), cert, key))
	}
	opts = append(opts, client.WithDialContext(func(ctx context.Context, network, addr string) (net.Conn, error) {
		return ns.Dial(ctx, network, addr)
	}))
	c, err := client.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// runIn runs a command inside ns with env added to a copy of the test's
// environment without proxies (the API is dialed directly), and returns
// its output and exit code.
func runIn(t *testing.T, ns *nettest.Namespace, env []string, name string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !strings.HasSuffix(strings.ToLower(k), "_proxy") && !strings.HasPrefix(k, "DOCKER_") && !strings.HasPrefix(k, "BERTH_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := ns.Do(cmd.Start); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	err := cmd.Wait()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		return out.String(), exit.ExitCode()
	case err != nil:
		t.Fatalf("%s: %v", name, err)
	}
	return out.String(), 0
}

// berthdFails runs berthd in h with args, expecting it to refuse to start
// within a few seconds, and returns what it said. Its --root must not
// even be made: the flags are judged before anything is touched.
func berthdFails(t *testing.T, h *nettest.Host, args ...string) string {
	t.Helper()
	root := filepath.Join(h.Dir, "refused-root")
	args = append([]string{"--root", root, "--exec-root", filepath.Join(h.Dir, "refused-run"), "--host", "unix://" + filepath.Join(h.Dir, "refused.sock")}, args...)
	start := time.Now()
	out, code := runIn(t, h.Namespace, nil, nettest.Berthd(), args...)
	if code == 0 {
		t.Fatalf("berthd %s started; want a refusal", strings.Join(args, " "))
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("berthd took %v to refuse", took)
	}
	if _, err := os.Stat(root); !os.IsNotExist(err) {
		t.Errorf("a refused berthd made its root %s (%v)", root, err)
	}
	return out
}

// dockerCLIs are the stock docker CLIs on this machine.
func dockerCLIs() []string {
	var out []string
	for _, p := range []string{"/usr/local/bin/docker", "/usr/bin/docker"} {
		if _, err := os.Stat(p); err == nil {
			out = append(out, p)
		}
	}
	return out
}

var berthCLI struct {
	once sync.Once
	path string
	err  error
}

// berthCLIPath is the berth CLI next to the berthd under test (make
// build puts both in bin/), else one built for the test binary.
func berthCLIPath(t *testing.T) string {
	t.Helper()
	berthCLI.once.Do(func() {
		if p := filepath.Join(filepath.Dir(nettest.Berthd()), "berth"); fileExists(p) {
			berthCLI.path = p
			return
		}
		dir, err := os.MkdirTemp("", "berth-cli-")
		if err != nil {
			berthCLI.err = err
			return
		}
		berthCLI.path = filepath.Join(dir, "berth")
		if out, err := exec.Command("go", "build", "-o", berthCLI.path, "github.com/berth-net/berth/cmd/berth").CombinedOutput(); err != nil {
			berthCLI.err = errors.New(err.Error() + ": " + string(out))
		}
	})
	if berthCLI.err != nil {
		t.Fatalf("build the berth CLI: %v", berthCLI.err)
	}
	return berthCLI.path
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// fileOwner is a file's owner, group and permission bits.
func fileOwner(t *testing.T, path string) (uid, gid int, mode os.FileMode) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	s := st.Sys().(*syscall.Stat_t)
	return int(s.Uid), int(s.Gid), st.Mode()
}

func TestAPISocketIsRootsAndItsGroups(t *testing.T) {
	t.Parallel()
	dockerGID := 0
	if g, err := user.LookupGroup(daemon.DefaultSocketGroup); err == nil {
		dockerGID, _ = strconv.Atoi(g.Gid)
	}
	for _, c := range []struct {
		name string
		args []string
		gid  int
	}{
		{"default: the docker group where it exists, else root's", nil, dockerGID},
		{"a group by number", []string{"--group", "4242"}, 4242},
		{"root alone", []string{"--group", ""}, 0},
		{"-G", []string{"-G", "4243"}, 4243},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			d := nettest.NewHost(t).StartDaemon(c.args...)
			uid, gid, mode := fileOwner(t, d.Socket)
			if uid != 0 || gid != c.gid || mode.Perm() != 0o660 || mode.Type() != os.ModeSocket {
				t.Errorf("socket %s: uid %d gid %d mode %v; want uid 0 gid %d mode 0660 socket", d.Socket, uid, gid, mode, c.gid)
			}
			// The group can reach the socket through its directory and list nothing.
			uid, gid, mode = fileOwner(t, filepath.Dir(d.Socket))
			if uid != 0 || gid != c.gid || mode.Perm() != 0o710 {
				t.Errorf("socket directory: uid %d gid %d mode %o; want uid 0 gid %d mode 0710", uid, gid, mode.Perm(), c.gid)
			}
			if c.gid == 0 && len(c.args) == 0 && !strings.Contains(d.Log(), "does not exist") {
				t.Errorf("no group %s on this machine, and berthd did not say so", daemon.DefaultSocketGroup)
			}
		})
	}
	t.Run("a group by name", func(t *testing.T) {
		t.Parallel()
		var name string
		var want int
		for _, n := range []string{"daemon", "adm", "nogroup", "users"} {
			if g, err := user.LookupGroup(n); err == nil {
				name = n
				want, _ = strconv.Atoi(g.Gid)
				break
			}
		}
		if name == "" {
			t.Skip("no common group on this machine to give the socket")
		}
		d := nettest.NewHost(t).StartDaemon("--group", name)
		if _, gid, _ := fileOwner(t, d.Socket); gid != want {
			t.Errorf("--group %s: socket gid %d, want %d", name, gid, want)
		}
	})
	t.Run("a group that does not exist", func(t *testing.T) {
		t.Parallel()
		out := berthdFails(t, nettest.NewHost(t), "--group", "no-such-group-berth")
		if !strings.Contains(out, `invalid --group "no-such-group-berth": no such group`) {
			t.Errorf("berthd said %q", out)
		}
	})
	t.Run("a restart with another group regroups the socket's directory", func(t *testing.T) {
		t.Parallel()
		d := nettest.NewHost(t).StartDaemon("--group", "4244")
		d.Stop()
		d.Args = []string{"--group", ""}
		d.Start()
		if _, gid, _ := fileOwner(t, filepath.Dir(d.Socket)); gid != 0 {
			t.Errorf("socket directory keeps gid %d after a restart with --group \"\"", gid)
		}
	})
}

func TestTLSVerifyAdmitsOnlyClientsWithACertificateOfItsCA(t *testing.T) {
	t.Parallel()
	h := nettest.NewHost(t)
	remote := h.AddRemote() // another machine: it reaches the host at 192.0.2.1
	files := newTLSFiles(t, net.ParseIP("192.0.2.1"), net.ParseIP("127.0.0.1"))
	const host = "tcp://192.0.2.1:2376"
	d := h.StartDaemon(append([]string{"-H", host, "-H", "tcp://127.0.0.1"}, files.daemonArgs()...)...)

	// The Go SDK, from the other machine and from the host itself (a tcp
	// host without a port is 2376 with TLS, as with Docker).
	for i, c := range []struct {
		ns   *nettest.Namespace
		host string
	}{{remote.Namespace, host}, {h.Namespace, "tcp://127.0.0.1:2376"}} {
		cl := sdkClient(t, c.ns, c.host, files.good)
		if _, err := cl.Ping(ctxT(t), client.PingOptions{}); err != nil {
			t.Fatalf("Go SDK with a good certificate to %s: %v", c.host, err)
		}
		if _, err := cl.NetworkCreate(ctxT(t), "over-tls-"+strconv.Itoa(i), client.NetworkCreateOptions{}); err != nil {
			t.Errorf("Go SDK with a good certificate: network create: %v", err)
		}
	}
	for _, c := range []struct{ why, certDir string }{
		{"without a certificate", files.anonymous},
		{"with a certificate of another CA", files.rogue},
	} {
		if _, err := sdkClient(t, remote.Namespace, host, c.certDir).Ping(ctxT(t), client.PingOptions{}); err == nil {
			t.Errorf("Go SDK %s was let in", c.why)
		}
	}
	// Plain HTTP to the TLS port gets nothing of the API.
	if _, err := sdkClient(t, remote.Namespace, host, "").NetworkList(ctxT(t), client.NetworkListOptions{}); err == nil {
		t.Errorf("plain HTTP to the TLS port was answered")
	}
	// A TLS client that does not check the server and sends no
	// certificate is refused in the handshake, whatever it asks.
	conn, err := remote.Dial(ctxT(t), "tcp", "192.0.2.1:2376")
	if err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true})
	tc.SetDeadline(time.Now().Add(5 * time.Second))
	req, _ := http.NewRequest("GET", "https://192.0.2.1:2376/networks", nil)
	if err := req.Write(tc); err == nil {
		if resp, err := http.ReadResponse(bufio.NewReader(tc), req); err == nil {
			t.Errorf("a client without a certificate got %s", resp.Status)
		}
	}
	tc.Close()
	if !strings.Contains(d.Log(), "TLS handshake error") {
		t.Errorf("berthd did not log the refused handshakes")
	}

	// The CLIs, configured as docker's users configure them.
	env := func(certDir string) []string {
		return []string{"DOCKER_HOST=" + host, "DOCKER_TLS_VERIFY=1", "DOCKER_CERT_PATH=" + certDir, "DOCKER_CONFIG=" + t.TempDir()}
	}
	clis := append(dockerCLIs(), berthCLIPath(t))
	for _, cli := range clis {
		out, code := runIn(t, remote.Namespace, env(files.good), cli, "network", "ls", "--format", "{{.Name}}")
		if code != 0 || !strings.Contains(out, "over-tls-") {
			t.Errorf("%s network ls with DOCKER_TLS_VERIFY and a good certificate: exit %d: %s", cli, code, out)
		}
		for _, certDir := range []string{files.rogue, files.anonymous} {
			if out, code := runIn(t, remote.Namespace, env(certDir), cli, "network", "ls"); code == 0 {
				t.Errorf("%s network ls with the certificates of %s was let in: %s", cli, filepath.Base(certDir), out)
			}
		}
		// Flags instead of the environment.
		out, code = runIn(t, remote.Namespace, []string{"DOCKER_CONFIG=" + t.TempDir()}, cli, "-H", host, "--tlsverify",
			"--tlscacert", filepath.Join(files.good, "ca.pem"), "--tlscert", filepath.Join(files.good, "cert.pem"),
			"--tlskey", filepath.Join(files.good, "key.pem"), "version", "--format", "{{.Server.APIVersion}}")
		if code != 0 || !strings.HasPrefix(out, "1.") {
			t.Errorf("%s --tlsverify --tlscacert … version: exit %d: %s", cli, code, out)
		}
	}
	if len(clis) == 1 {
		t.Logf("no stock docker CLI at /usr/local/bin/docker or /usr/bin/docker: only berth's CLI was tried")
	}
}

func TestPlainTCPIsRefusedBeyondLoopbackUnlessInsecureTCP(t *testing.T) {
	t.Parallel()
	files := newTLSFiles(t, net.ParseIP("192.0.2.1"))
	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		h := nettest.NewHost(t)
		for _, c := range []struct {
			args []string
			want string
		}{
			{[]string{"-H", "tcp://192.0.2.1:2375"}, "refusing to serve the API on tcp://192.0.2.1:2375 without TLS"},
			{[]string{"-H", "tcp://0.0.0.0:2375"}, "refusing to serve the API on tcp://0.0.0.0:2375 without TLS"},
			{[]string{"-H", "192.0.2.1"}, "refusing to serve the API on tcp://192.0.2.1:2375 without TLS"},
			{[]string{"-H", "tcp://192.0.2.1:2376", "--tls", "--tlscert", files.serverCert, "--tlskey", files.serverKey},
				"refusing to serve the API on tcp://192.0.2.1:2376 with TLS but without client verification"},
			{[]string{"-H", "tcp://192.0.2.1:2376", "--tlsverify", "--tlscacert", "/nonexistent/ca.pem", "--tlscert", files.serverCert, "--tlskey", files.serverKey},
				"/nonexistent/ca.pem"},
			{[]string{"-H", "ssh://192.0.2.1"}, "scheme must be unix or tcp"},
		} {
			if out := berthdFails(t, h, c.args...); !strings.Contains(out, c.want) {
				t.Errorf("berthd %s said %q, want %q", strings.Join(c.args, " "), out, c.want)
			}
		}
	})
	t.Run("loopback, with a warning", func(t *testing.T) {
		t.Parallel()
		h := nettest.NewHost(t)
		d := h.StartDaemon("-H", "tcp://127.0.0.1:2375")
		cl := sdkClient(t, h.Namespace, "tcp://127.0.0.1:2375", "")
		if _, err := cl.Ping(ctxT(t), client.PingOptions{}); err != nil {
			t.Fatalf("plain TCP on loopback: %v", err)
		}
		assertAPIWarning(t, d, cl, "the API is served on tcp://127.0.0.1:2375 without TLS")
	})
	t.Run("with --insecure-tcp, with a loud warning", func(t *testing.T) {
		t.Parallel()
		h := nettest.NewHost(t)
		remote := h.AddRemote()
		d := h.StartDaemon("-H", "tcp://192.0.2.1:2375", "--insecure-tcp")
		cl := sdkClient(t, remote.Namespace, "tcp://192.0.2.1:2375", "")
		if _, err := cl.Ping(ctxT(t), client.PingOptions{}); err != nil {
			t.Fatalf("plain TCP with --insecure-tcp from another machine: %v", err)
		}
		assertAPIWarning(t, d, cl, "INSECURE (--insecure-tcp): the API is served on tcp://192.0.2.1:2375 without TLS")
	})
}

// assertAPIWarning checks that berthd warned in its log and in /info.
func assertAPIWarning(t *testing.T, d *nettest.Daemon, cl *client.Client, want string) {
	t.Helper()
	if !strings.Contains(d.Log(), want) {
		t.Errorf("berthd's log lacks %q", want)
	}
	info, err := cl.Info(ctxT(t), client.InfoOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(info.Info.Warnings, "\n"), want) {
		t.Errorf("/info warnings %q lack %q", info.Info.Warnings, want)
	}
}
