package cluster

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap/zapcore"
)

// The lease TTL of the tests' hosts: etcd's shortest with its default
// election timeout.
const testTTL = 2 * time.Second

var loopback = netip.MustParseAddr("127.0.0.1")

// testConfig is a host's Config for tests: short TTL, timeouts and
// progress interval, logging into the test's log when it fails.
func testConfig(t *testing.T, host string, endpoints ...string) Config {
	return Config{
		Endpoints: endpoints, Advertise: loopback, HostID: host, Version: "test",
		LeaseTTL: testTTL, ReadyTimeout: 20 * time.Second,
		Log: testLog(t), progressInterval: 200 * time.Millisecond,
	}
}

// testLog writes into a buffer that the test's log shows if it fails.
func testLog(t *testing.T) *slog.Logger {
	var buf lockedBuffer
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("BERTH_TEST_LOG") != "" {
			t.Logf("berth's log:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// open opens a Store that the test closes when it ends.
func open(t *testing.T, cfg Config) *Store {
	t.Helper()
	s, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("open the cluster store of %s: %v", cfg.HostID, err)
	}
	t.Cleanup(s.Close)
	return s
}

// openEmbedded opens a Store with an embedded member on free loopback
// ports; it returns the Store and its client endpoint.
func openEmbedded(t *testing.T, host string) (*Store, string) {
	t.Helper()
	ports := freePorts(t, 2)
	cfg := testConfig(t, host)
	cfg.Embedded, cfg.DataDir, cfg.ClientPort, cfg.PeerPort = true, filepath.Join(t.TempDir(), "etcd"), ports[0], ports[1]
	return open(t, cfg), fmt.Sprintf("127.0.0.1:%d", ports[0])
}

// freePorts returns n loopback TCP ports that were free a moment ago.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// rawClient is a plain etcd client, outside any Store: the test's own
// view of etcd, and its hand for what no host would do.
func rawClient(t *testing.T, endpoints ...string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, Logger: zapLogger(testLog(t), zapcore.ErrorLevel, nil)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond every 20 ms until it holds, for at most timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for i := 0; i < int(timeout/(20*time.Millisecond))+1; i++ {
		if cond() {
			return time.Since(start)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: not within %s", what, timeout)
	return 0
}

func waitReady(t *testing.T, c *Cache) {
	t.Helper()
	select {
	case <-c.Ready():
	case <-time.After(10 * time.Second):
		t.Fatalf("cache not loaded within 10s: %v", c.Health())
	}
}

// etcdBinary is an etcd server binary to run as a child process: the
// BERTH_TEST_ETCD environment variable, else Debian's etcd-server as .ci/run
// installs it. The test skips without one.
func etcdBinary(t *testing.T) string {
	t.Helper()
	cands := []string{os.Getenv("BERTH_TEST_ETCD"), "/usr/local/bin/etcd", "/usr/bin/etcd"}
	for _, c := range cands {
		if c == "" {
			continue
		}
		if _, err := os.Stat(c); err == nil {
			return c
		}
	}
	t.Skip("no etcd binary: set BERTH_TEST_ETCD or install Debian's etcd-server binary as .ci/run does")
	return ""
}

// etcdProc is an etcd server run by a test on loopback ports.
type etcdProc struct {
	t                    *testing.T
	bin, name, dir, logf string
	clientPort, peerPort int
	initialCluster       string
	cmd                  *exec.Cmd
}

// startEtcdCluster starts an etcd cluster of n members as child
// processes; the test kills them when it ends.
func startEtcdCluster(t *testing.T, n int) []*etcdProc {
	t.Helper()
	bin := etcdBinary(t)
	ports := freePorts(t, 2*n)
	dir := t.TempDir()
	var procs []*etcdProc
	var members []string
	for i := range n {
		p := &etcdProc{t: t, bin: bin, name: fmt.Sprintf("m%d", i), clientPort: ports[2*i], peerPort: ports[2*i+1]}
		p.dir = filepath.Join(dir, p.name)
		p.logf = filepath.Join(dir, p.name+".log")
		members = append(members, fmt.Sprintf("%s=http://127.0.0.1:%d", p.name, p.peerPort))
		procs = append(procs, p)
	}
	for _, p := range procs {
		p.initialCluster = strings.Join(members, ",")
		p.start()
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range procs {
				if b, err := os.ReadFile(p.logf); err == nil {
					t.Logf("etcd %s's log (last 4 KiB):\n%s", p.name, b[max(0, len(b)-4096):])
				}
			}
		}
	})
	return procs
}

func (p *etcdProc) endpoint() string { return fmt.Sprintf("127.0.0.1:%d", p.clientPort) }

// start runs the member, on its data directory as it is.
func (p *etcdProc) start() {
	p.t.Helper()
	client := "http://" + p.endpoint()
	peer := fmt.Sprintf("http://127.0.0.1:%d", p.peerPort)
	logf, err := os.OpenFile(p.logf, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		p.t.Fatal(err)
	}
	defer logf.Close()
	p.cmd = exec.Command(p.bin, "--name", p.name, "--data-dir", p.dir,
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", p.initialCluster, "--initial-cluster-state", "new",
		"--initial-cluster-token", "berth-test", "--logger", "zap")
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		p.t.Fatalf("start etcd %s: %v", p.name, err)
	}
	cmd := p.cmd
	p.t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
}

// kill stops the member at once, as a crash would.
func (p *etcdProc) kill() {
	p.t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		p.t.Fatalf("kill etcd %s (pid %d): %v", p.name, p.cmd.Process.Pid, err)
	}
	p.cmd.Wait()
}

// recorded is what the Store would put again under a new lease.
func (s *Store) recorded() map[string]record {
	s.recMu.Lock()
	defer s.recMu.Unlock()
	return maps.Clone(s.records)
}
