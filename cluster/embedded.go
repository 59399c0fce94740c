package cluster

import (
	"context"
	"fmt"
	"net/netip"
	"net/url"
	"sync/atomic"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
)

// member is the etcd member that berthd runs inside itself.
type member struct {
	etcd *embed.Etcd
	// client is the host:port that clients reach it at.
	client string
	// closing ends the streams that other hosts hold open (watches,
	// keepalives), which would otherwise hold up Close for etcd's request
	// timeout (7 s) on each listener.
	closing context.CancelFunc
	quiet   *atomic.Bool
}

// startMember starts the embedded etcd member: a cluster of one, with
// clients on Advertise and 127.0.0.1 at ClientPort and peers on Advertise
// at PeerPort, and waits until it serves.
func startMember(ctx context.Context, cfg Config) (*member, error) {
	if cfg.DataDir == "" {
		return nil, fmt.Errorf("cluster store: the embedded member needs a data directory")
	}
	ec := embed.NewConfig()
	ec.Name = "berth-" + cfg.HostID
	ec.Dir = cfg.DataDir
	scheme := "http"
	if cfg.TLS.enabled() {
		scheme = "https"
		info := transport.TLSInfo{CertFile: cfg.TLS.Cert, KeyFile: cfg.TLS.Key, TrustedCAFile: cfg.TLS.CA, ClientCertAuth: cfg.TLS.CA != ""}
		ec.ClientTLSInfo, ec.PeerTLSInfo = info, info
	}
	at := func(a netip.Addr, port int) url.URL {
		return url.URL{Scheme: scheme, Host: netip.AddrPortFrom(a, uint16(port)).String()}
	}
	client := at(cfg.Advertise, cfg.ClientPort)
	ec.AdvertiseClientUrls = []url.URL{client}
	ec.ListenClientUrls = []url.URL{client}
	if loopback := netip.AddrFrom4([4]byte{127, 0, 0, 1}); cfg.Advertise != loopback {
		ec.ListenClientUrls = append(ec.ListenClientUrls, at(loopback, cfg.ClientPort))
	}
	peer := at(cfg.Advertise, cfg.PeerPort)
	ec.ListenPeerUrls, ec.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	ec.InitialCluster = ec.Name + "=" + peer.String()
	ec.InitialClusterToken = "berth"
	// Keep an hour of history for watches that reconnect; the database
	// does not grow without end.
	ec.AutoCompactionMode, ec.AutoCompactionRetention = embed.CompactorModePeriodic, "1h"
	m := &member{client: client.Host, quiet: new(atomic.Bool)}
	ec.Logger = "zap"
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zapLogger(cfg.Log.With("etcd", "member"), zapcore.WarnLevel, m.quiet))
	closing, cancel := context.WithCancel(context.Background())
	m.closing = cancel
	ec.GRPCAdditionalServerOptions = []grpc.ServerOption{grpc.ChainStreamInterceptor(
		func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
			ctx, cancel := context.WithCancel(ss.Context())
			defer context.AfterFunc(closing, cancel)()
			defer cancel()
			return handler(srv, &serverStream{ServerStream: ss, ctx: ctx})
		})}

	e, err := embed.StartEtcd(ec)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("start the embedded etcd member (clients on %s, peers on %s, data in %s): %w", client.Host, peer.Host, cfg.DataDir, err)
	}
	m.etcd = e
	select {
	case <-e.Server.ReadyNotify():
		return m, nil
	case err := <-e.Err():
		m.close()
		return nil, fmt.Errorf("embedded etcd member: %w", err)
	case <-ctx.Done():
		m.close()
		return nil, fmt.Errorf("the embedded etcd member (clients on %s) was not ready within %s", client.Host, cfg.ReadyTimeout)
	}
}

func (m *member) close() {
	m.quiet.Store(true)
	m.closing()
	m.etcd.Close()
}

// serverStream is a gRPC stream whose context ends when the member closes.
type serverStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *serverStream) Context() context.Context { return s.ctx }
