package volume

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/berth-net/berth/store"
)

func newTestStore(t *testing.T) (*Store, store.Store, string) {
	t.Helper()
	root := t.TempDir()
	st := store.NewMemory()
	s, err := New(root, st)
	if err != nil {
		t.Fatal(err)
	}
	return s, st, root
}

func TestVolumesAreMadeKeptAndRemoved(t *testing.T) {
	s, st, root := newTestStore(t)
	v, err := s.Create("data", "", nil, map[string]string{"team": "x"})
	if err != nil {
		t.Fatal(err)
	}
	if v.Driver != "local" || v.Mountpoint != filepath.Join(root, "volumes", "data", "_data") || v.Labels["team"] != "x" || v.Anonymous || v.CreatedAt.IsZero() {
		t.Fatalf("volume %+v", v)
	}
	if fi, err := os.Stat(v.Mountpoint); err != nil || !fi.IsDir() {
		t.Fatalf("mountpoint: %v", err)
	}
	if err := os.WriteFile(filepath.Join(v.Mountpoint, "f"), []byte("12345"), 0o644); err != nil {
		t.Fatal(err)
	}
	if n := s.Size("data"); n != 5 {
		t.Errorf("size %d", n)
	}
	// A second create of the name is the same volume.
	again, err := s.Create("data", "local", nil, nil)
	if err != nil || !again.CreatedAt.Equal(v.CreatedAt) || again.Labels["team"] != "x" {
		t.Errorf("create again: %+v, %v", again, err)
	}
	anon, err := s.Create("", "", nil, nil)
	if err != nil || len(anon.Name) != 64 || !anon.Anonymous {
		t.Fatalf("anonymous: %+v, %v", anon, err)
	}
	// Reloaded from the store, data and all.
	s2, err := New(root, st)
	if err != nil {
		t.Fatal(err)
	}
	// List sorts by name; the anonymous volume's random name may sort either side of "data".
	got := s2.List()
	if len(got) != 2 || got[0].Name > got[1].Name {
		t.Fatalf("after a reload: %+v", got)
	}
	data := got[0]
	if data.Name != "data" {
		data = got[1]
	}
	if data.Name != "data" || data.Mountpoint != v.Mountpoint || data.Labels["team"] != "x" {
		t.Fatalf("after a reload: %+v", got)
	}
	if err := s2.Remove("data", false, []string{"c1"}); !errdefs.IsConflict(err) || !strings.Contains(err.Error(), "remove data: volume is in use - [c1]") {
		t.Errorf("remove in use: %v", err)
	}
	if err := s2.Remove("data", false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Dir(v.Mountpoint)); !os.IsNotExist(err) {
		t.Error("the data outlived the volume")
	}
	if _, err := s2.Get("data"); !errdefs.IsNotFound(err) || err.Error() != "get data: no such volume" {
		t.Errorf("get a removed volume: %v", err)
	}
	if err := s2.Remove("data", false, nil); !errdefs.IsNotFound(err) {
		t.Errorf("remove a removed volume: %v", err)
	}
	if err := s2.Remove("data", true, nil); err != nil {
		t.Errorf("force remove of a missing volume: %v", err)
	}
}

func TestVolumeBadInput(t *testing.T) {
	s, _, _ := newTestStore(t)
	cases := []struct {
		name, driver string
		opts         map[string]string
		is           func(error) bool
		text         string
	}{
		{"a", "", nil, errdefs.IsInvalidArgument, "volume name is too short"},
		{"/abs", "", nil, errdefs.IsInvalidArgument, "includes invalid characters for a local volume name"},
		{"ok", "nfs", nil, errdefs.IsNotFound, `plugin "nfs" not found`},
		{"ok", "", map[string]string{"size": "1"}, errdefs.IsInvalidArgument, `invalid option: "size"`},
		{"ok", "", map[string]string{"type": "tmpfs"}, errdefs.IsInvalidArgument, "go together"},
	}
	for _, c := range cases {
		if _, err := s.Create(c.name, c.driver, c.opts, nil); err == nil || !c.is(err) || !strings.Contains(err.Error(), c.text) {
			t.Errorf("create %q %q %v: %v, want %q", c.name, c.driver, c.opts, err, c.text)
		}
	}
	if len(s.List()) != 0 {
		t.Error("a refused create left a volume")
	}
}

func TestAVolumeWithMountOptionsIsMountedWhileUsed(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount")
	}
	s, _, _ := newTestStore(t)
	v, err := s.Create("scratch", "", map[string]string{"type": "tmpfs", "device": "tmpfs", "o": "size=1m,noexec"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	mounted := func() bool {
		var st, parent unix.Statfs_t
		unix.Statfs(v.Mountpoint, &st)
		unix.Statfs(filepath.Dir(v.Mountpoint), &parent)
		return st.Type == unix.TMPFS_MAGIC && st.Type != parent.Type || st.Type == unix.TMPFS_MAGIC && st.Blocks < parent.Blocks
	}
	for _, user := range []string{"a", "b"} {
		if p, err := s.Mount("scratch", user); err != nil || p != v.Mountpoint {
			t.Fatalf("mount for %s: %s, %v", user, p, err)
		}
	}
	t.Cleanup(func() { unix.Unmount(v.Mountpoint, unix.MNT_DETACH) })
	if !mounted() || strings.Join(s.InUse("scratch"), ",") != "a,b" {
		t.Fatalf("not mounted for a and b (%v)", s.InUse("scratch"))
	}
	s.Unmount("scratch", "a")
	if !mounted() {
		t.Error("unmounted while b still uses it")
	}
	s.Unmount("scratch", "b")
	if mounted() {
		t.Error("still mounted when nobody uses it")
	}
	if _, err := s.Mount("nope", "a"); !errdefs.IsNotFound(err) {
		t.Errorf("mount of a missing volume: %v", err)
	}
}

func TestMountOptionsSplitIntoFlagsAndData(t *testing.T) {
	flags, data := mountFlags("rw,size=10m,noexec,uid=1000,ro")
	if flags != unix.MS_NOEXEC|unix.MS_RDONLY || data != "size=10m,uid=1000" {
		t.Errorf("flags %x data %q", flags, data)
	}
}
