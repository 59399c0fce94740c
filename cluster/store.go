package cluster

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/namespace"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// maxTxnOps is etcd's default limit of operations in one branch of a
// transaction (--max-txn-ops): ClaimAll takes at most this many keys.
const maxTxnOps = 128

// Store is this host's connection to the cluster store.
//
// The host holds one lease, granted at Open and kept alive in the
// background. Records put with leased=true live under it: when the host
// dies, etcd deletes them once the lease expires, within LeaseTTL plus
// about a second (etcd checks expiry every 500 ms and revokes through its
// leader); if the etcd leader changes meanwhile, the new leader gives every
// lease its TTL afresh, so the worst case is twice LeaseTTL plus an
// election: 21 s with the defaults. Close stops the keepalives without
// revoking, so that a daemon that restarts quickly takes its records back
// (Claim with the same value) before they expire.
//
// If the lease is lost nonetheless (etcd unreachable for longer than its
// TTL, or revoked), the Store grants a new one and puts every leased
// record it holds again; a leased claim that another holder took meanwhile
// is dropped and reported to Config.Lost.
type Store struct {
	cfg     Config
	where   string // "etcd at …", for errors
	member  *member
	cli     *clientv3.Client
	kv      clientv3.KV
	watcher clientv3.Watcher

	ctx       context.Context
	cancel    context.CancelFunc
	closeOnce sync.Once
	wg        sync.WaitGroup
	kick      chan struct{}

	// mu is held for reading by every write to etcd and for writing while
	// the lease changes and its records are put again, so that no write
	// interleaves with the re-put (a Delete must not be undone by it).
	mu      sync.RWMutex
	leaseID clientv3.LeaseID
	// records are what this host put under its lease and will put again
	// under a new one.
	recMu   sync.Mutex
	records map[string]record
}

type record struct {
	value string
	claim bool
}

// KV is a key and its value; keys are relative to Prefix.
type KV struct {
	Key, Value string
}

// Host is what a host registers under HostsPrefix.
type Host struct {
	ID        string
	Advertise netip.Addr
	Version   string
	Started   time.Time
}

// HostsPrefix holds a record per live host, under its lease.
const HostsPrefix = "hosts/"

// Open connects to the cluster store (starting the embedded member first
// when cfg.Embedded) and grants the host's lease. It waits at most
// cfg.ReadyTimeout for etcd to answer.
func Open(ctx context.Context, cfg Config) (_ *Store, err error) {
	cfg = cfg.withDefaults()
	if cfg.HostID == "" {
		return nil, fmt.Errorf("cluster store: no host ID")
	}
	if !cfg.Embedded && len(cfg.Endpoints) == 0 {
		return nil, fmt.Errorf("cluster store: no etcd endpoints")
	}
	if cfg.Embedded && !cfg.Advertise.IsValid() {
		return nil, fmt.Errorf("cluster store: the embedded member needs an address to advertise")
	}
	tlsCfg, err := cfg.TLS.clientConfig()
	if err != nil {
		return nil, err
	}
	ctx, cancelOpen := context.WithTimeout(ctx, cfg.ReadyTimeout)
	defer cancelOpen()

	s := &Store{cfg: cfg, records: map[string]record{}, kick: make(chan struct{}, 1)}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	endpoints := cfg.Endpoints
	if cfg.Embedded {
		if s.member, err = startMember(ctx, cfg); err != nil {
			return nil, err
		}
		endpoints = []string{s.member.client}
		s.where = "embedded etcd member at " + endpoints[0]
	} else {
		s.where = "etcd at " + strings.Join(endpoints, ",")
	}
	scheme := "http://"
	if tlsCfg != nil {
		scheme = "https://"
	}
	urls := make([]string, len(endpoints))
	for i, ep := range endpoints {
		urls[i] = scheme + ep
	}
	s.cli, err = clientv3.New(clientv3.Config{
		Endpoints: urls,
		TLS:       tlsCfg,
		// Also how long the lease's first keepalive may take.
		DialTimeout: cfg.OpTimeout,
		// Find a dead connection (a host gone without a reset) before the
		// lease runs out; etcd refuses pings more often than every 5 s.
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 3 * time.Second,
		Context:              s.ctx,
		Logger:               zapLogger(cfg.Log, zapcore.ErrorLevel, nil),
	})
	if err != nil {
		return nil, fmt.Errorf("cluster store: %s: %w", s.where, err)
	}
	s.kv = namespace.NewKV(s.cli.KV, Prefix)
	s.watcher = namespace.NewWatcher(s.cli.Watcher, Prefix)

	// Granting the lease needs a leader and a quorum: it is the readiness
	// check too.
	lease, err := s.cli.Grant(ctx, ttlSeconds(cfg.LeaseTTL))
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("no answer within %s%s: %w", cfg.ReadyTimeout, diagnose(endpoints, tlsCfg), err)
		}
		return nil, &unavailableError{where: s.where, op: "open", err: err}
	}
	s.leaseID = lease.ID
	s.wg.Add(1)
	go s.keepLease()
	cfg.Log.Info("cluster store open", "store", s.where, "host", cfg.HostID, "lease-ttl", cfg.LeaseTTL)
	return s, nil
}

// diagnose says why etcd's endpoints may not answer, as far as a
// connection (and a TLS handshake) to each tells: gRPC only says it waited.
func diagnose(endpoints []string, tlsCfg *tls.Config) string {
	var notes []string
	for _, ep := range endpoints {
		conn, err := net.DialTimeout("tcp", ep, time.Second)
		if err == nil && tlsCfg != nil {
			cfg := tlsCfg.Clone()
			cfg.ServerName, _, _ = net.SplitHostPort(ep)
			c := tls.Client(conn, cfg)
			c.SetDeadline(time.Now().Add(time.Second))
			err = c.Handshake()
			if err == nil {
				// A server that refuses the client's certificate says so
				// after the handshake.
				c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
				if _, rerr := c.Read(make([]byte, 1)); rerr != nil && !isTimeout(rerr) && !errors.Is(rerr, io.EOF) {
					err = rerr
				}
			}
			conn = c
		}
		if conn != nil {
			conn.Close()
		}
		if err != nil {
			notes = append(notes, err.Error())
		}
	}
	if len(notes) == 0 {
		return ""
	}
	return " (" + strings.Join(notes, "; ") + ")"
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func ttlSeconds(d time.Duration) int64 {
	return max(1, int64(math.Ceil(d.Seconds())))
}

func (t TLSFiles) clientConfig() (*tls.Config, error) {
	if !t.enabled() {
		return nil, nil
	}
	info := transport.TLSInfo{CertFile: t.Cert, KeyFile: t.Key, TrustedCAFile: t.CA}
	c, err := info.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("cluster store TLS files: %w", err)
	}
	return c, nil
}

// Close stops the keepalives, the caches and the embedded member. It does
// not revoke the lease: the host's records stay until it expires.
func (s *Store) Close() {
	s.closeOnce.Do(s.close)
}

func (s *Store) close() {
	s.cancel()
	s.wg.Wait()
	if s.cli != nil {
		s.cli.Close()
	}
	if s.member != nil {
		s.member.close()
	}
}

// lease is the host's lease now.
func (s *Store) lease() clientv3.LeaseID {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.leaseID
}

// HostID is this host's ID in the cluster.
func (s *Store) HostID() string { return s.cfg.HostID }

// Advertise is the address other hosts reach this one at.
func (s *Store) Advertise() netip.Addr { return s.cfg.Advertise }

// Register puts this host's record, HostsPrefix+HostID, under its lease.
func (s *Store) Register(ctx context.Context) error {
	b, err := json.Marshal(Host{ID: s.cfg.HostID, Advertise: s.cfg.Advertise, Version: s.cfg.Version, Started: time.Now().UTC()})
	if err != nil {
		return err
	}
	return s.Put(ctx, HostsPrefix+s.cfg.HostID, string(b), true)
}

// Put sets key to value; leased puts it under the host's lease.
func (s *Store) Put(ctx context.Context, key, value string, leased bool) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var opts []clientv3.OpOption
	if leased {
		opts = append(opts, clientv3.WithLease(s.leaseID))
	}
	octx, cancel := s.opContext(ctx)
	defer cancel()
	if _, err := s.kv.Put(octx, key, value, opts...); err != nil {
		return s.fail(ctx, "put "+key, err)
	}
	if leased {
		s.remember(key, record{value: value})
	} else {
		s.forget(key)
	}
	return nil
}

// Delete removes key; a key that is not there is no error.
func (s *Store) Delete(ctx context.Context, key string) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	octx, cancel := s.opContext(ctx)
	defer cancel()
	if _, err := s.kv.Delete(octx, key); err != nil {
		return s.fail(ctx, "delete "+key, err)
	}
	s.forget(key)
	return nil
}

// Claim sets key to value unless it holds something else, in one
// transaction: of several hosts claiming one key at once, one wins. won is
// true when key holds value afterwards, whether this call created it or it
// held value already (a host taking back its own claim after a restart);
// holder is what key holds. A leased claim is put under the host's lease,
// also when key held value already under another lease.
func (s *Store) Claim(ctx context.Context, key, value string, leased bool) (holder string, won bool, err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	octx, cancel := s.opContext(ctx)
	defer cancel()
	won, holder, err = s.claim(octx, key, value, leased)
	if err != nil {
		return "", false, s.fail(ctx, "claim "+key, err)
	}
	if won && leased {
		s.remember(key, record{value: value, claim: true})
	}
	return holder, won, nil
}

// claim is Claim's transaction; the caller holds s.mu.
func (s *Store) claim(ctx context.Context, key, value string, leased bool) (won bool, holder string, err error) {
	absent := clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
	if !leased {
		resp, err := s.kv.Txn(ctx).If(absent).Then(clientv3.OpPut(key, value)).Else(clientv3.OpGet(key)).Commit()
		if err != nil {
			return false, "", err
		}
		if resp.Succeeded {
			return true, value, nil
		}
		holder = rangeValue(resp.Responses[0])
		return holder == value, holder, nil
	}
	put := clientv3.OpPut(key, value, clientv3.WithLease(s.leaseID))
	ours := clientv3.OpTxn([]clientv3.Cmp{clientv3.Compare(clientv3.Value(key), "=", value)},
		[]clientv3.Op{put}, []clientv3.Op{clientv3.OpGet(key)})
	resp, err := s.kv.Txn(ctx).If(absent).Then(put).Else(ours).Commit()
	if err != nil {
		return false, "", err
	}
	if resp.Succeeded {
		return true, value, nil
	}
	inner := resp.Responses[0].GetResponseTxn()
	if inner.Succeeded {
		return true, value, nil
	}
	return false, rangeValue(inner.Responses[0]), nil
}

// rangeValue is the value a transaction's Get found.
func rangeValue(op *etcdserverpb.ResponseOp) string {
	if r := op.GetResponseRange(); r != nil && len(r.Kvs) > 0 {
		return string(r.Kvs[0].Value)
	}
	return ""
}

// ClaimAll sets every key of kvs to its value, or none: in one
// transaction that succeeds only if none of the keys exists. When it does
// not, taken lists the keys that exist and what they hold, and nothing was
// written. At most 128 keys (etcd's --max-txn-ops).
func (s *Store) ClaimAll(ctx context.Context, kvs []KV, leased bool) (taken []KV, won bool, err error) {
	if len(kvs) > maxTxnOps {
		return nil, false, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("cluster store: %d keys in one claim; at most %d", len(kvs), maxTxnOps))
	}
	seen := make(map[string]bool, len(kvs))
	for _, kv := range kvs {
		if seen[kv.Key] {
			return nil, false, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("cluster store: key %q twice in one claim", kv.Key))
		}
		seen[kv.Key] = true
	}
	if len(kvs) == 0 {
		return nil, true, nil
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	var opts []clientv3.OpOption
	if leased {
		opts = append(opts, clientv3.WithLease(s.leaseID))
	}
	cmps := make([]clientv3.Cmp, len(kvs))
	puts := make([]clientv3.Op, len(kvs))
	gets := make([]clientv3.Op, len(kvs))
	for i, kv := range kvs {
		cmps[i] = clientv3.Compare(clientv3.CreateRevision(kv.Key), "=", 0)
		puts[i] = clientv3.OpPut(kv.Key, kv.Value, opts...)
		gets[i] = clientv3.OpGet(kv.Key)
	}
	octx, cancel := s.opContext(ctx)
	defer cancel()
	resp, err := s.kv.Txn(octx).If(cmps...).Then(puts...).Else(gets...).Commit()
	if err != nil {
		return nil, false, s.fail(ctx, fmt.Sprintf("claim %s and %d more", kvs[0].Key, len(kvs)-1), err)
	}
	if !resp.Succeeded {
		for i, r := range resp.Responses {
			if rr := r.GetResponseRange(); rr != nil && len(rr.Kvs) > 0 {
				taken = append(taken, KV{Key: kvs[i].Key, Value: string(rr.Kvs[0].Value)})
			}
		}
		return taken, false, nil
	}
	if leased {
		for _, kv := range kvs {
			s.remember(kv.Key, record{value: kv.Value, claim: true})
		}
	}
	return nil, true, nil
}

// Release deletes key if it holds ifValue (compare-and-delete): a host
// gives back only what it holds. released says whether it did.
func (s *Store) Release(ctx context.Context, key, ifValue string) (released bool, err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	octx, cancel := s.opContext(ctx)
	defer cancel()
	resp, err := s.kv.Txn(octx).If(clientv3.Compare(clientv3.Value(key), "=", ifValue)).Then(clientv3.OpDelete(key)).Commit()
	if err != nil {
		return false, s.fail(ctx, "release "+key, err)
	}
	if resp.Succeeded {
		s.forget(key)
	}
	return resp.Succeeded, nil
}

// ReleaseAll deletes every key of kvs, in one transaction that succeeds
// only if each holds its value and, when unlessUnder is not empty, no key
// lies under unlessUnder (a network is removed only while no host has an
// endpoint on it). released says whether it did; when it did not, nothing
// was deleted.
func (s *Store) ReleaseAll(ctx context.Context, kvs []KV, unlessUnder string) (released bool, err error) {
	if len(kvs)+1 > maxTxnOps {
		return false, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("cluster store: %d keys in one release; at most %d", len(kvs), maxTxnOps-1))
	}
	if len(kvs) == 0 {
		return true, nil
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	cmps := make([]clientv3.Cmp, 0, len(kvs)+1)
	dels := make([]clientv3.Op, len(kvs))
	for i, kv := range kvs {
		cmps = append(cmps, clientv3.Compare(clientv3.Value(kv.Key), "=", kv.Value))
		dels[i] = clientv3.OpDelete(kv.Key)
	}
	if unlessUnder != "" {
		// Over a range, a comparison holds when it holds for every key in
		// it, and for an empty range when it holds for a key never made.
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(unlessUnder), "=", 0).WithPrefix())
	}
	octx, cancel := s.opContext(ctx)
	defer cancel()
	resp, err := s.kv.Txn(octx).If(cmps...).Then(dels...).Commit()
	if err != nil {
		return false, s.fail(ctx, fmt.Sprintf("release %s and %d more", kvs[0].Key, len(kvs)-1), err)
	}
	if resp.Succeeded {
		for _, kv := range kvs {
			s.forget(kv.Key)
		}
	}
	return resp.Succeeded, nil
}

func (s *Store) remember(key string, r record) {
	s.recMu.Lock()
	s.records[key] = r
	s.recMu.Unlock()
}

func (s *Store) forget(key string) {
	s.recMu.Lock()
	delete(s.records, key)
	s.recMu.Unlock()
}

// opContext bounds one operation by OpTimeout: an unreachable etcd makes
// it fail instead of wait.
func (s *Store) opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.cfg.OpTimeout)
}

// fail says what went wrong in op: the cluster store being unavailable, in
// an error that wraps errdefs.ErrUnavailable and names the endpoints.
func (s *Store) fail(ctx context.Context, op string, err error) error {
	switch {
	case errors.Is(ctx.Err(), context.Canceled):
		return fmt.Errorf("cluster store: %s: %w", op, ctx.Err())
	case s.ctx.Err() != nil:
		return &unavailableError{where: s.where, op: op, err: errors.New("the store is closed")}
	case errors.Is(err, rpctypes.ErrLeaseNotFound):
		// The keeper finds out at its next keepalive; make it now.
		select {
		case s.kick <- struct{}{}:
		default:
		}
		return &unavailableError{where: s.where, op: op, err: fmt.Errorf("this host's lease was lost and is being renewed: %w", err)}
	case isUnavailable(err):
		return &unavailableError{where: s.where, op: op, err: err}
	}
	return fmt.Errorf("cluster store: %s: %w", op, err)
}

// isUnavailable says whether err means etcd did not answer, or had no
// leader to answer with: the operation may succeed later.
func isUnavailable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var code codes.Code
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		code = ee.Code()
	} else if st, ok := status.FromError(err); ok {
		code = st.Code()
	} else {
		return false
	}
	switch code {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
		return true
	}
	return false
}

// unavailableError is an operation that failed because etcd did not
// answer; it wraps errdefs.ErrUnavailable.
type unavailableError struct {
	where, op string
	err       error
}

func (e *unavailableError) Error() string {
	return fmt.Sprintf("cluster store unavailable (%s): %s: %v", e.where, e.op, e.err)
}

func (e *unavailableError) Unwrap() []error { return []error{errdefs.ErrUnavailable, e.err} }
