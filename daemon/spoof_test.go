package daemon_test

import (
	"encoding/binary"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/moby/moby/client"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/berth-net/berth/internal/nettest"
)

// sources listens for UDP on port inside ns and records the source address
// of every datagram.
type sources struct {
	mu   sync.Mutex
	seen map[string]int
}

func listenSources(t *testing.T, ns *nettest.Namespace, addr string) *sources {
	t.Helper()
	var pc net.PacketConn
	if err := ns.Do(func() (err error) { pc, err = net.ListenPacket("udp4", addr); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	s := &sources{seen: map[string]int{}}
	go func() {
		buf := make([]byte, 1500)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			s.mu.Lock()
			s.seen[from.(*net.UDPAddr).IP.String()]++
			s.mu.Unlock()
		}
	}()
	return s
}

func (s *sources) count(ip string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen[ip]
}

// sendFrom sends a few datagrams from ns to dst, from src: an address the
// namespace holds, or one it is given for the purpose.
func sendFrom(t *testing.T, ns *nettest.Namespace, src, dst string) {
	t.Helper()
	err := ns.Do(func() error {
		c, err := net.DialUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(src), 0)), net.UDPAddrFromAddrPort(netip.MustParseAddrPort(dst)))
		if err != nil {
			return err
		}
		defer c.Close()
		for range 5 {
			c.Write([]byte("from " + src))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("send from %s: %v", src, err)
	}
}

// arpReply broadcasts, from ns's eth0, an ARP reply saying ip is at mac.
func arpReply(t *testing.T, ns *nettest.Namespace, ip netip.Addr, mac net.HardwareAddr) {
	t.Helper()
	err := ns.Do(func() error {
		eth0, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_ARP)))
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		bcast := net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
		frame := append(append(append([]byte{}, bcast...), eth0.HardwareAddr...), 0x08, 0x06)
		arp := []byte{0, 1, 8, 0, 6, 4, 0, 2}
		arp = append(append(arp, mac...), ip.AsSlice()...)
		arp = append(append(arp, bcast...), ip.AsSlice()...)
		frame = append(frame, arp...)
		to := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: eth0.Index, Halen: 6}
		copy(to.Addr[:], bcast)
		for range 3 {
			if err := unix.Sendto(fd, frame, 0, to); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("send ARP: %v", err)
	}
}

func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

// neighbour is the MAC ns has for ip on eth0.
func neighbour(t *testing.T, ns *nettest.Namespace, ip string) string {
	t.Helper()
	eth0, err := ns.Netlink.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	neighs, err := ns.Netlink.NeighList(eth0.Attrs().Index, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range neighs {
		if n.IP.String() == ip {
			return n.HardwareAddr.String()
		}
	}
	return ""
}

// spoofDrops sums the packets the anti-spoofing rules of the daemon's
// bridge table dropped.
func spoofDrops(t *testing.T, h *nettest.Host) uint64 {
	t.Helper()
	conn, err := nftables.New(nftables.WithNetNSFd(h.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	tables, err := conn.ListTablesOfFamily(nftables.TableFamilyBridge)
	if err != nil {
		t.Fatal(err)
	}
	var sum uint64
	for _, tb := range tables {
		if !strings.HasPrefix(tb.Name, "berth") {
			continue
		}
		rules, err := conn.GetRules(tb, &nftables.Chain{Name: "prerouting", Table: tb})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rules {
			for _, e := range r.Exprs {
				if c, ok := e.(*expr.Counter); ok {
					sum += c.Packets
				}
			}
		}
	}
	return sum
}

func TestAContainerCanSendOnlyAsItself(t *testing.T) {
	t.Parallel()
	h, d := containerHost(t)
	create(t, d, "app", client.NetworkCreateOptions{})
	create(t, d, "routed", client.NetworkCreateOptions{Options: map[string]string{"com.berth.bridge.anti_spoofing": "false"}})
	attackerID := runContainer(t, d, sleeper("attacker", "app", nil))
	victimID := runContainer(t, d, sleeper("victim", "app", nil))
	observerID := runContainer(t, d, sleeper("observer", "app", nil))
	attacker, victim, observer := netnsOf(t, d, attackerID), netnsOf(t, d, victimID), netnsOf(t, d, observerID)
	ipOf := func(id string) string {
		return inspectContainer(t, d, id).NetworkSettings.Networks["app"].IPAddress.String()
	}
	aIP, vIP, oIP := ipOf(attackerID), ipOf(victimID), ipOf(observerID)
	seen := listenSources(t, observer, ":9000")
	before := spoofDrops(t, h)

	// From its own address, the attacker gets through.
	sendFrom(t, attacker, aIP, oIP+":9000")
	sendFrom(t, victim, vIP, oIP+":9000")
	waitFor(t, 5*time.Second, func() error {
		if seen.count(aIP) < 5 || seen.count(vIP) < 5 {
			return errString("the observer has not heard all five datagrams from the attacker and the victim yet")
		}
		return nil
	})
	victimHeard := seen.count(vIP)

	// The attacker takes the victim's address: nothing it sends as the
	// victim arrives.
	eth0, err := attacker.Netlink.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if err := attacker.Netlink.AddrAdd(eth0, &netlink.Addr{IPNet: &net.IPNet{IP: net.ParseIP(vIP), Mask: net.CIDRMask(32, 32)}}); err != nil {
		t.Fatal(err)
	}
	sendFrom(t, attacker, vIP, oIP+":9000")
	// ARP: the attacker says the victim's address is at its own MAC.
	arpReply(t, attacker, netip.MustParseAddr(vIP), eth0.Attrs().HardwareAddr)
	// MAC: the attacker sends as the victim's MAC from its own address.
	vMAC := inspectContainer(t, d, victimID).NetworkSettings.Networks["app"].MacAddress.String()
	hw, _ := net.ParseMAC(vMAC)
	if err := attacker.Netlink.LinkSetHardwareAddr(eth0, hw); err != nil {
		t.Fatal(err)
	}
	sendFrom(t, attacker, aIP, oIP+":9000")

	// The victim's own traffic goes on.
	sendFrom(t, victim, vIP, oIP+":9000")
	waitFor(t, 5*time.Second, func() error {
		if seen.count(vIP) < victimHeard+5 {
			return errString("the victim's later datagrams have not all arrived")
		}
		return nil
	})
	if got := seen.count(vIP); got != victimHeard+5 {
		t.Errorf("the observer heard %d datagrams from the victim's address, want the victim's %d", got, victimHeard+5)
	}
	if got := seen.count(aIP); got != 5 {
		t.Errorf("the observer heard %d datagrams from the attacker's address, want 5 (those sent before it forged its MAC)", got)
	}
	if got := neighbour(t, observer, vIP); got != "" && got != vMAC {
		t.Errorf("the observer's neighbour entry for the victim is %s, want the victim's %s: ARP was spoofed", got, vMAC)
	}
	// What surely reached the port: the 3 forged ARP replies and the 5
	// datagrams sent with a forged MAC (datagrams from the forged address
	// may have died in the attacker's own kernel, waiting for an ARP answer
	// its forged request never got).
	after := spoofDrops(t, h)
	if after < before+8 {
		t.Errorf("the anti-spoofing rules counted %d drops, want at least 8", after-before)
	}
	// The metric reads the same counters.
	if v, ok := parseMetrics(t, scrape(t, d)).value("berth_spoofed_frames_dropped_total"); !ok || v < float64(after) {
		t.Errorf("berth_spoofed_frames_dropped_total = %v (present %v), want at least the %d the rules counted", v, ok, after)
	}

	// A network that allows it lets a container send as another address.
	routerID := runContainer(t, d, sleeper("router", "routed", nil))
	peerID := runContainer(t, d, sleeper("peer", "routed", nil))
	router, peer := netnsOf(t, d, routerID), netnsOf(t, d, peerID)
	peerIP := inspectContainer(t, d, peerID).NetworkSettings.Networks["routed"].IPAddress.String()
	heard := listenSources(t, peer, ":9000")
	rEth0, err := router.Netlink.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if err := router.Netlink.AddrAdd(rEth0, &netlink.Addr{IPNet: &net.IPNet{IP: net.ParseIP("10.99.0.1"), Mask: net.CIDRMask(32, 32)}}); err != nil {
		t.Fatal(err)
	}
	sendFrom(t, router, "10.99.0.1", peerIP+":9000")
	waitFor(t, 5*time.Second, func() error {
		if heard.count("10.99.0.1") == 0 {
			return errString("with anti_spoofing=false, a datagram from another address did not arrive")
		}
		return nil
	})
}

type errString string

func (e errString) Error() string { return string(e) }
