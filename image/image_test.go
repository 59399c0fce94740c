package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/errdefs"

	"github.com/berth-net/berth/store"
)

var mtime = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

// entry kinds for archives made in tests.
func dir(name string, mode int64) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode, ModTime: mtime}
}

func reg(name, body string, mode int64) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(body)), Linkname: body, ModTime: mtime}
}

func symlink(name, target string) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777, ModTime: mtime}
}

func hardlink(name, target string) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target, ModTime: mtime}
}

// archive writes a tar of hdrs; a regular file's body travels in Linkname.
func archive(t *testing.T, hdrs ...*tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range hdrs {
		h := *h
		body := ""
		if h.Typeflag == tar.TypeReg {
			body, h.Linkname = h.Linkname, ""
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func newStore(t *testing.T) *Store {
	t.Helper()
	s, err := NewStore(filepath.Join(t.TempDir(), "images"), store.NewMemory())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func importTar(t *testing.T, s *Store, tarball []byte, ref string, changes ...string) Image {
	t.Helper()
	img, err := s.Import(context.Background(), bytes.NewReader(tarball), ref, "", changes)
	if err != nil {
		t.Fatalf("import as %q: %v", ref, err)
	}
	return img
}

// small is a distinct one-file image per n.
func small(t *testing.T, n int) []byte {
	return archive(t, reg("n", fmt.Sprint(n), 0o644))
}

func TestUnpackRefusesPathsOutOfTheImage(t *testing.T) {
	victim := t.TempDir()
	for _, c := range []struct {
		name string
		tar  []*tar.Header
	}{
		{"dot-dot path", []*tar.Header{reg("../owned", "x", 0o644)}},
		{"dot-dot inside a path", []*tar.Header{dir("a/", 0o755), reg("a/../../owned", "x", 0o644)}},
		{"hard link out", []*tar.Header{hardlink("pw", "../../../etc/passwd")}},
		{"file through a relative symlink out", []*tar.Header{symlink("esc", "../../../../"+filepath.Base(victim)), reg("esc/owned", "x", 0o644)}},
		{"file through an absolute symlink", []*tar.Header{symlink("esc", victim), reg("esc/owned", "x", 0o644)}},
		{"directory through a symlink", []*tar.Header{symlink("esc", victim), dir("esc/sub/", 0o755)}},
		{"hard link through a symlink", []*tar.Header{symlink("esc", victim), reg("f", "x", 0o644), hardlink("esc/owned", "f")}},
		{"hard link to a file through a symlink", []*tar.Header{symlink("esc", "/etc"), hardlink("pw", "esc/passwd")}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newStore(t)
			_, err := s.Import(context.Background(), bytes.NewReader(archive(t, c.tar...)), "evil", "", nil)
			if !errdefs.IsInvalidArgument(err) {
				t.Fatalf("import = %v, want an invalid-argument error", err)
			}
			if left, _ := os.ReadDir(victim); len(left) != 0 {
				t.Errorf("the import wrote %s outside the image", left[0].Name())
			}
			if _, err := os.Stat(filepath.Join(s.dir, "..", "owned")); err == nil {
				t.Errorf("the import wrote beside the image directory")
			}
			if left, _ := os.ReadDir(s.dir); len(left) != 0 || len(s.List()) != 0 {
				t.Errorf("a refused import left %d entries and %d images", len(left), len(s.List()))
			}
		})
	}
}

func TestAbsolutePathsLandInsideTheImage(t *testing.T) {
	s := newStore(t)
	img := importTar(t, s, archive(t, reg("/etc/motd", "hi", 0o644)), "")
	if b, err := os.ReadFile(filepath.Join(s.RootFS(img.ID), "etc/motd")); err != nil || string(b) != "hi" {
		t.Fatalf("etc/motd in the image = %q, %v", b, err)
	}
}

func TestLaterEntryReplacesASymlinkRatherThanWritingThroughIt(t *testing.T) {
	victim := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(victim, []byte("orig"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := newStore(t)
	img := importTar(t, s, archive(t,
		reg("target", "orig", 0o644), symlink("in", "target"), reg("in", "new", 0o644),
		symlink("out", victim), reg("out", "new", 0o644),
	), "")
	rootfs := s.RootFS(img.ID)
	for _, name := range []string{"in", "out"} {
		fi, err := os.Lstat(filepath.Join(rootfs, name))
		if err != nil || !fi.Mode().IsRegular() {
			t.Errorf("%s after a file replaced the symlink: %v, %v", name, fi, err)
		}
	}
	for _, f := range []string{filepath.Join(rootfs, "target"), victim} {
		if b, _ := os.ReadFile(f); string(b) != "orig" {
			t.Errorf("%s was written through a symlink: %q", f, b)
		}
	}
}

func TestUnpackKeepsTreeModesOwnersAndLinks(t *testing.T) {
	s := newStore(t)
	owned := reg("home/user/file", "mine", 0o600)
	owned.Uid, owned.Gid = 1000, 1001
	img := importTar(t, s, archive(t,
		dir("./", 0o755),
		dir("tmp/", 0o1777),
		reg("bin/tool", "#!/bin/sh\n", 0o755),
		reg("bin/su", "setuid", 0o4755),
		symlink("bin/sh", "tool"),
		hardlink("bin/tool2", "bin/tool"),
		owned,
		&tar.Header{Typeflag: tar.TypeChar, Name: "dev/null", Mode: 0o666, Devmajor: 1, Devminor: 3, ModTime: mtime},
		&tar.Header{Typeflag: tar.TypeFifo, Name: "run/fifo", Mode: 0o600, ModTime: mtime},
	), "")
	rootfs := s.RootFS(img.ID)
	mode := func(name string) os.FileMode {
		fi, err := os.Lstat(filepath.Join(rootfs, name))
		if err != nil {
			t.Fatal(err)
		}
		return fi.Mode()
	}
	for name, want := range map[string]os.FileMode{
		".":        os.ModeDir | 0o755,
		"tmp":      os.ModeDir | os.ModeSticky | 0o777,
		"bin":      os.ModeDir | 0o755,
		"bin/tool": 0o755,
		"bin/su":   os.ModeSetuid | 0o755,
		"bin/sh":   os.ModeSymlink | 0o777,
	} {
		if got := mode(name); got != want {
			t.Errorf("mode of %s = %v, want %v", name, got, want)
		}
	}
	if target, _ := os.Readlink(filepath.Join(rootfs, "bin/sh")); target != "tool" {
		t.Errorf("bin/sh -> %q, want tool", target)
	}
	a, _ := os.Stat(filepath.Join(rootfs, "bin/tool"))
	b, _ := os.Stat(filepath.Join(rootfs, "bin/tool2"))
	if !os.SameFile(a, b) {
		t.Errorf("bin/tool2 is not a hard link of bin/tool")
	}
	for _, name := range []string{"bin/tool", "tmp", "."} {
		fi, _ := os.Stat(filepath.Join(rootfs, name))
		if !fi.ModTime().Equal(mtime) {
			t.Errorf("mtime of %s = %v, want %v", name, fi.ModTime(), mtime)
		}
	}
	for _, name := range []string{"dev/null", "run/fifo"} {
		if _, err := os.Lstat(filepath.Join(rootfs, name)); err == nil {
			t.Errorf("%s was made: device nodes and FIFOs are runc's to make", name)
		}
	}
	if os.Geteuid() == 0 {
		st := a.Sys().(*syscall.Stat_t)
		fi, _ := os.Stat(filepath.Join(rootfs, "home/user/file"))
		own := fi.Sys().(*syscall.Stat_t)
		if st.Uid != 0 || own.Uid != 1000 || own.Gid != 1001 {
			t.Errorf("owners: bin/tool %d, home/user/file %d:%d; want 0 and 1000:1001", st.Uid, own.Uid, own.Gid)
		}
	}
	if want := int64(len("#!/bin/sh\n") + len("setuid") + len("tool") + len("mine")); img.Size != want {
		t.Errorf("size = %d, want %d (hard links once, symlinks by target length)", img.Size, want)
	}
}

func TestSameInputGivesTheSameImageWhateverTheCompression(t *testing.T) {
	plain := archive(t, dir("etc/", 0o755), reg("etc/hostname", "", 0o644))
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(plain)
	zw.Close()
	compressed := map[string][]byte{"plain": plain, "gzip": gz.Bytes()}
	for _, tool := range []string{"bzip2", "xz", "zstd"} {
		cmd := exec.Command(tool, "-c", "-q")
		cmd.Stdin = bytes.NewReader(plain)
		if out, err := cmd.Output(); err == nil {
			compressed[tool] = out
		} else {
			t.Logf("%s not tried: %v", tool, err)
		}
	}
	s := newStore(t)
	want := importTar(t, s, plain, "")
	if sum := fmt.Sprintf("sha256:%x", sha256.Sum256(plain)); !slices.Equal(want.DiffIDs, []string{sum}) {
		t.Errorf("diff IDs = %v, want the digest of the tar, %s", want.DiffIDs, sum)
	}
	if !want.Created.Equal(mtime) {
		t.Errorf("created = %v, want the newest mtime in the archive, %v", want.Created, mtime)
	}
	for name, input := range compressed {
		if got := importTar(t, s, input, ""); got.ID != want.ID {
			t.Errorf("%s input gave image %s, plain gave %s", name, got.ID, want.ID)
		}
	}
	if other, err := s.Import(context.Background(), bytes.NewReader(plain), "", "another comment", nil); err != nil || other.ID == want.ID {
		t.Errorf("another comment gave image %s (%v), want a new ID", other.ID, err)
	}
}

func TestImageIDIsTheDigestOfItsConfig(t *testing.T) {
	st := store.NewMemory()
	s, err := NewStore(filepath.Join(t.TempDir(), "images"), st)
	if err != nil {
		t.Fatal(err)
	}
	img := importTar(t, s, small(t, 1), "busybox")
	var rec record
	st.View(func(tx store.Tx) error {
		_, err := store.GetJSON(tx, bucket, strings.TrimPrefix(img.ID, "sha256:"), &rec)
		return err
	})
	if got := fmt.Sprintf("sha256:%x", sha256.Sum256(rec.Config)); got != img.ID {
		t.Fatalf("digest of the stored config = %s, image ID %s", got, img.ID)
	}
	for _, key := range []string{`"architecture":"`, `"os":"linux"`, `"created":"2024-05-01T12:00:00Z"`, `"diff_ids":["sha256:`,
		`"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]`} {
		if !strings.Contains(string(rec.Config), key) {
			t.Errorf("config %s lacks %s", rec.Config, key)
		}
	}
}

func TestMalformedInputIsRefused(t *testing.T) {
	s := newStore(t)
	for name, input := range map[string][]byte{
		"empty":       nil,
		"not a tar":   []byte("hello, this is not an archive at all, not even close, no"),
		"bad gzip":    {0x1f, 0x8b, 0, 0, 0},
		"cut-off tar": archive(t, reg("f", strings.Repeat("x", 4096), 0o644))[:1024],
	} {
		if _, err := s.Import(context.Background(), bytes.NewReader(input), "x", "", nil); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%s input: %v, want an invalid-argument error", name, err)
		}
	}
	if _, err := s.Import(context.Background(), bytes.NewReader(small(t, 1)), "x@sha256:"+strings.Repeat("0", 64), "", nil); !errdefs.IsInvalidArgument(err) {
		t.Errorf("import with a digest reference: %v", err)
	}
	if left, _ := os.ReadDir(s.dir); len(left) != 0 {
		t.Errorf("refused imports left %v", left)
	}
}

func TestReimportingATagMovesItAndUntaggedImagesStay(t *testing.T) {
	s := newStore(t)
	a := importTar(t, s, small(t, 1), "busybox")
	if !slices.Equal(a.RepoTags, []string{"busybox:latest"}) || a.LastTagTime.IsZero() {
		t.Fatalf("tags = %v (last tagged %v), want [busybox:latest]", a.RepoTags, a.LastTagTime)
	}
	b := importTar(t, s, small(t, 2), "docker.io/library/busybox:latest")
	c := importTar(t, s, small(t, 3), "")
	importTar(t, s, small(t, 2), "registry.example:5000/team/app:1.0")
	got := map[string][]string{}
	for _, img := range s.List() {
		got[img.ID] = img.RepoTags
	}
	want := map[string][]string{a.ID: {}, b.ID: {"busybox:latest", "registry.example:5000/team/app:1.0"}, c.ID: {}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("images and tags = %v, want %v", got, want)
	}
}

func TestLookupFollowsDockersRules(t *testing.T) {
	s := newStore(t)
	img := importTar(t, s, small(t, 0), "busybox:1.36")
	hex := strings.TrimPrefix(img.ID, "sha256:")
	for _, ref := range []string{"busybox:1.36", "docker.io/library/busybox:1.36", img.ID, hex, hex[:12], "sha256:" + hex[:5]} {
		if got, err := s.Get(ref); err != nil || got.ID != img.ID {
			t.Errorf("Get(%q) = %s, %v; want %s", ref, got.ID, err, img.ID)
		}
	}
	// Images until two IDs share a first digit: that prefix is ambiguous.
	first := map[byte]string{hex[0]: img.ID}
	for n := 1; ; n++ {
		id := importTar(t, s, small(t, n), "").ID
		c := id[len("sha256:")]
		if first[c] != "" {
			if _, err := s.Get(string(c)); !errdefs.IsNotFound(err) {
				t.Errorf("Get of the prefix %q that two images share = %v, want not found", c, err)
			}
			break
		}
		first[c] = id
	}
	for ref, msg := range map[string]string{
		"busybox":                  "No such image: busybox:latest",
		"nothere":                  "No such image: nothere:latest",
		"sha256:" + hex[:63] + "x": "No such image: sha256:" + hex[:63] + "x",
		"busybox@sha256:" + hex:    "No such image: busybox@sha256:" + hex,
	} {
		if _, err := s.Get(ref); !errdefs.IsNotFound(err) || err.Error() != msg {
			t.Errorf("Get(%q) = %v, want not found: %s", ref, err, msg)
		}
	}
	if _, err := s.Get("UPPER"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Get of an invalid reference = %v, want invalid argument", err)
	}
}

func usedBy(ids ...string) func(string) []string {
	return func(string) []string { return ids }
}

func TestRemoveFollowsDockersRules(t *testing.T) {
	s := newStore(t)
	img := importTar(t, s, small(t, 1), "busybox")
	importTar(t, s, small(t, 1), "busybox:other")
	short := strings.TrimPrefix(img.ID, "sha256:")[:12]
	exists := func() bool { _, err := os.Stat(s.RootFS(img.ID)); return err == nil }

	removed, err := s.Remove(img.ID, false, nil)
	if !errdefs.IsConflict(err) || err.Error() != "conflict: unable to delete "+short+" (must be forced) - image is referenced in multiple repositories" {
		t.Errorf("remove by ID of an image with two tags = %v, %v", removed, err)
	}
	removed, err = s.Remove("busybox", false, nil)
	if err != nil || fmt.Sprint(removed) != "[{busybox:latest }]" || !exists() {
		t.Errorf("remove of one of two tags = %v, %v; want only untagged", removed, err)
	}

	_, err = s.Remove("busybox:other", false, usedBy("c0ffee0123456789abcdef"))
	if !errdefs.IsConflict(err) || err.Error() != `conflict: unable to remove repository reference "busybox:other" (must force) - container c0ffee012345 is using its referenced image `+short {
		t.Errorf("remove of the last tag of an image in use = %v", err)
	}
	_, err = s.Remove(short, false, usedBy("c0ffee0123456789abcdef"))
	if !errdefs.IsConflict(err) || err.Error() != "conflict: unable to delete "+short+" (must be forced) - image is being used by container c0ffee012345" {
		t.Errorf("remove by ID of an image in use = %v", err)
	}

	// Forced while in use: gone from view, files kept for the container.
	removed, err = s.Remove("busybox:other", true, usedBy("c0ffee"))
	if err != nil || fmt.Sprint(removed) != fmt.Sprintf("[{busybox:other } { %s}]", img.ID) {
		t.Errorf("forced remove = %v, %v", removed, err)
	}
	if _, err := s.Get(img.ID); !errdefs.IsNotFound(err) || len(s.List()) != 0 || !exists() {
		t.Errorf("after a forced remove of an image in use: Get %v, %d listed, files kept %v", err, len(s.List()), exists())
	}
	if err := s.Collect(usedBy("c0ffee")); err != nil || !exists() {
		t.Errorf("Collect while the container lives: %v, files kept %v", err, exists())
	}
	if err := s.Collect(nil); err != nil || exists() {
		t.Errorf("Collect once unused: %v, files kept %v", err, exists())
	}

	img = importTar(t, s, small(t, 2), "a")
	importTar(t, s, small(t, 2), "b")
	removed, err = s.Remove(img.ID[:15], true, nil)
	if err != nil || fmt.Sprint(removed) != fmt.Sprintf("[{a:latest } {b:latest } { %s}]", img.ID) || exists() {
		t.Errorf("forced remove by ID of an image with two tags = %v, %v", removed, err)
	}
	if _, err := s.Remove("a", false, nil); !errdefs.IsNotFound(err) || err.Error() != "No such image: a:latest" {
		t.Errorf("remove of a removed image = %v", err)
	}
	if left, _ := os.ReadDir(s.dir); len(left) != 0 {
		t.Errorf("removals left %v", left)
	}
}

func TestReimportBringsBackAnImageRemovedWhileInUse(t *testing.T) {
	s := newStore(t)
	img := importTar(t, s, small(t, 1), "busybox")
	if _, err := s.Remove("busybox", true, usedBy("c0ffee")); err != nil {
		t.Fatal(err)
	}
	again := importTar(t, s, small(t, 1), "busybox")
	if again.ID != img.ID || !slices.Equal(again.RepoTags, []string{"busybox:latest"}) {
		t.Fatalf("re-import = %s %v", again.ID, again.RepoTags)
	}
	if err := s.Collect(nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.RootFS(img.ID)); err != nil {
		t.Errorf("Collect removed the files of an image that is back: %v", err)
	}
}

func TestStoreReloadsImagesAndSweepsWhatACrashLeft(t *testing.T) {
	st := store.NewMemory()
	dir := filepath.Join(t.TempDir(), "images")
	s, err := NewStore(dir, st)
	if err != nil {
		t.Fatal(err)
	}
	img := importTar(t, s, small(t, 1), "busybox", `CMD ["sh"]`)
	leftovers := []string{filepath.Join(dir, "tmp-123", "rootfs"), filepath.Join(dir, strings.Repeat("ab", 32), "rootfs")}
	for _, d := range leftovers {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s, err = NewStore(dir, st)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Get("busybox")
	if err != nil || got.ID != img.ID || !slices.Equal(got.Config.Cmd, []string{"sh"}) {
		t.Fatalf("after reload: %+v, %v", got, err)
	}
	for _, d := range leftovers {
		if _, err := os.Stat(filepath.Dir(d)); err == nil {
			t.Errorf("%s survived the reload", filepath.Dir(d))
		}
	}
	if _, err := os.Stat(s.RootFS(img.ID)); err != nil {
		t.Errorf("the image's files: %v", err)
	}
}

func TestImagesHandOutCopies(t *testing.T) {
	s := newStore(t)
	importTar(t, s, small(t, 1), "busybox", "LABEL a=b")
	img, _ := s.Get("busybox")
	img.Config.Env[0] = "changed"
	img.Config.Labels["a"] = "changed"
	img.RepoTags[0] = "changed"
	id, cfg, err := s.Resolve("busybox")
	if err != nil || id != img.ID || cfg.Env[0] == "changed" || cfg.Labels["a"] != "b" || s.List()[0].RepoTags[0] != "busybox:latest" {
		t.Fatalf("a caller's change reached the store: %s %+v %v", id, cfg, err)
	}
}

func TestRootFSIsOnlyForIDs(t *testing.T) {
	s := newStore(t)
	hex := strings.Repeat("ab", 32)
	for id, want := range map[string]string{
		"sha256:" + hex: filepath.Join(s.dir, hex, "rootfs"),
		hex:             filepath.Join(s.dir, hex, "rootfs"),
		"../../etc":     "",
		"busybox":       "",
	} {
		if got := s.RootFS(id); got != want {
			t.Errorf("RootFS(%q) = %q, want %q", id, got, want)
		}
	}
}
