package main

import (
	"net"
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

// startUpstream serves DNS in the namespace at ns on addr (UDP and TCP):
// upstreamName has an A record with a long TTL, every other name is
// NXDOMAIN. It stands for the resolver of the network the host is on.
func startUpstream(ns string, addr netip.AddrPort) (stop func(), err error) {
	var pc net.PacketConn
	var l net.Listener
	err = inNamespace(ns, func() error {
		var err error
		if pc, err = net.ListenPacket("udp", addr.String()); err != nil {
			return err
		}
		l, err = net.Listen("tcp", addr.String())
		return err
	})
	if err != nil {
		if pc != nil {
			pc.Close()
		}
		return nil, err
	}
	h := dns.HandlerFunc(answerUpstream)
	udp := &dns.Server{PacketConn: pc, Handler: h}
	tcp := &dns.Server{Listener: l, Handler: h}
	go udp.ActivateAndServe()
	go tcp.ActivateAndServe()
	return func() {
		udp.Shutdown()
		tcp.Shutdown()
	}, nil
}

func answerUpstream(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.RecursionAvailable = true
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	switch {
	case strings.EqualFold(q.Name, upstreamName+".") && q.Qtype == dns.TypeA:
		m.Answer = []dns.RR{&dns.A{
			Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 3600},
			A:   net.ParseIP(upstreamA),
		}}
	case strings.EqualFold(q.Name, upstreamName+"."):
		// The name exists, without records of this type.
	default:
		m.Rcode = dns.RcodeNameError
	}
	w.WriteMsg(m)
}
