package daemon_test

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	units "github.com/docker/go-units"
	ctypes "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/client"

	"github.com/berth-net/berth/internal/nettest"
)

// tarOf is a tar of one file per name, its name as content.
func tarOf(t *testing.T, names ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(n)), ModTime: time.Unix(1700000000, 0)}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(n))
	}
	tw.Close()
	return buf.Bytes()
}

// importImage imports r through the API and returns the ID the stream
// reports.
func importImage(t *testing.T, d *nettest.Daemon, r io.Reader, ref string, opts client.ImageImportOptions) (string, error) {
	t.Helper()
	res, err := d.Client.ImageImport(ctxT(t), client.ImageImportSource{Source: r, SourceName: "-"}, ref, opts)
	if err != nil {
		return "", err
	}
	defer res.Close()
	var msg jsonstream.Message
	if err := json.NewDecoder(res).Decode(&msg); err != nil {
		t.Fatalf("import stream: %v", err)
	}
	if msg.Error != nil || !strings.HasPrefix(msg.Status, "sha256:") {
		t.Fatalf("import stream = %+v, want the image ID as status", msg)
	}
	return msg.Status, nil
}

func mustImport(t *testing.T, d *nettest.Daemon, tarball []byte, ref string) string {
	t.Helper()
	id, err := importImage(t, d, bytes.NewReader(tarball), ref, client.ImageImportOptions{})
	if err != nil {
		t.Fatalf("import %s: %v", ref, err)
	}
	return id
}

func TestImageImportListInspectRemoveThroughTheAPI(t *testing.T) {
	t.Parallel()
	tarball, err := os.ReadFile(nettest.BusyboxImage(t))
	if err != nil {
		t.Fatal(err)
	}
	h := nettest.NewHost(t)
	d := h.StartDaemon()

	id, err := importImage(t, d, bytes.NewReader(tarball), "busybox", client.ImageImportOptions{
		Message: "from the test", Changes: []string{`CMD ["sh"]`, "WORKDIR /var/www"},
	})
	if err != nil {
		t.Fatal(err)
	}
	list, err := d.Client.ImageList(ctxT(t), client.ImageListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || list.Items[0].ID != id || !slices.Equal(list.Items[0].RepoTags, []string{"busybox:latest"}) ||
		list.Items[0].Size < 1<<20 || list.Items[0].RepoDigests == nil {
		t.Fatalf("images = %+v, want busybox:latest %s of over 1 MiB", list.Items, id)
	}
	// A restart reloads the image from the store.
	d.Stop()
	d.Start()
	img, err := d.Client.ImageInspect(ctxT(t), "busybox")
	if err != nil {
		t.Fatal(err)
	}
	diffID := fmt.Sprintf("sha256:%x", sha256.Sum256(tarball))
	if img.ID != id || img.Comment != "from the test" || img.Os != "linux" || img.Architecture != runtime.GOARCH ||
		!slices.Equal(img.RootFS.Layers, []string{diffID}) || img.Config == nil ||
		!slices.Equal(img.Config.Cmd, []string{"sh"}) || img.Config.WorkingDir != "/var/www" ||
		!slices.Equal(img.Config.Env, []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}) {
		t.Errorf("inspect = %+v (config %+v), want %s with layer %s", img.InspectResponse, img.Config, id, diffID)
	}
	rootfs := filepath.Join(d.Root, "images", strings.TrimPrefix(id, "sha256:"), "rootfs")
	if target, err := os.Readlink(filepath.Join(rootfs, "bin", "sh")); err != nil || target != "busybox" {
		t.Errorf("bin/sh in the unpacked image -> %q, %v", target, err)
	}

	removed, err := d.Client.ImageRemove(ctxT(t), "busybox", client.ImageRemoveOptions{})
	if err != nil || fmt.Sprint(removed.Items) != fmt.Sprintf("[{ busybox:latest} {%s }]", id) {
		t.Fatalf("remove = %+v, %v; want untagged busybox:latest, deleted %s", removed.Items, err, id)
	}
	if _, err := os.Stat(rootfs); !os.IsNotExist(err) {
		t.Errorf("the removed image's files: %v", err)
	}
	_, err = d.Client.ImageInspect(ctxT(t), "busybox")
	if !cerrdefs.IsNotFound(err) || !strings.Contains(err.Error(), "No such image: busybox:latest") {
		t.Errorf("inspect of a removed image = %v", err)
	}
}

func TestImageListFilters(t *testing.T) {
	t.Parallel()
	d := nettest.NewHost(t).StartDaemon()
	app1 := mustImport(t, d, tarOf(t, "one"), "app:1")
	app2 := mustImport(t, d, tarOf(t, "two"), "registry.example:5000/team/app:2")
	web := mustImport(t, d, tarOf(t, "web"), "web")
	none := mustImport(t, d, tarOf(t, "none"), "")

	for _, c := range []struct {
		filters client.Filters
		want    []string
	}{
		{nil, []string{app1 + "[app:1]", app2 + "[registry.example:5000/team/app:2]", web + "[web:latest]", none + "[]"}},
		{make(client.Filters).Add("reference", "app"), []string{app1 + "[app:1]"}},
		{make(client.Filters).Add("reference", "*/*/app"), []string{app2 + "[registry.example:5000/team/app:2]"}},
		{make(client.Filters).Add("reference", "web:lat*", "app:1"), []string{app1 + "[app:1]", web + "[web:latest]"}},
		{make(client.Filters).Add("dangling", "true"), []string{none + "[]"}},
		{make(client.Filters).Add("dangling", "false"), []string{app1 + "[app:1]", app2 + "[registry.example:5000/team/app:2]", web + "[web:latest]"}},
	} {
		res, err := d.Client.ImageList(ctxT(t), client.ImageListOptions{Filters: c.filters})
		if err != nil {
			t.Errorf("list %v: %v", c.filters, err)
			continue
		}
		var got []string
		for _, img := range res.Items {
			got = append(got, img.ID+fmt.Sprint(img.RepoTags))
		}
		slices.Sort(got)
		slices.Sort(c.want)
		if !slices.Equal(got, c.want) {
			t.Errorf("list %v = %v, want %v", c.filters, got, c.want)
		}
	}
	if code, msg := raw(t, d, "GET", `/images/json?filters={"dangling":["maybe"]}`, "", ""); code != 400 || msg != "invalid filter 'dangling=maybe'" {
		t.Errorf("bad dangling filter: %d %s", code, msg)
	}
	// Before API 1.43, untagged images show as <none>.
	var old []struct{ RepoTags []string }
	_, body := raw(t, d, "GET", `/v1.41/images/json?filters={"dangling":["true"]}`, "", "")
	if err := json.Unmarshal([]byte(body), &old); err != nil || len(old) != 1 || fmt.Sprint(old[0].RepoTags) != "[<none>:<none>]" {
		t.Errorf("untagged image for API 1.41: %s", body)
	}
}

func TestImportRefusesUnsafeAndBrokenArchives(t *testing.T) {
	t.Parallel()
	d := nettest.NewHost(t).StartDaemon()
	var evil bytes.Buffer
	tw := tar.NewWriter(&evil)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "etc", Linkname: "/etc"})
	tw.WriteHeader(&tar.Header{Name: "etc/berth-was-here", Mode: 0o644})
	tw.Close()
	for name, c := range map[string]struct {
		input []byte
		want  string
	}{
		"a path out":               {tarOf(t, "../../escaped"), "unpack ../../escaped: the path leads out of the image"},
		"a file through a symlink": {evil.Bytes(), "unpack etc/berth-was-here: "},
		"not a tar":                {[]byte("plain text, no archive here, not at all........"), "read tar archive: "},
		"nothing":                  {nil, "the input is empty: expected a tar archive"},
	} {
		_, err := importImage(t, d, bytes.NewReader(c.input), "evil", client.ImageImportOptions{})
		if !cerrdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("import of %s = %v, want a 400 saying %q", name, err, c.want)
		}
	}
	if _, err := os.Stat("/etc/berth-was-here"); err == nil {
		t.Fatal("an import wrote /etc/berth-was-here")
	}
	if res, err := d.Client.ImageList(ctxT(t), client.ImageListOptions{}); err != nil || len(res.Items) != 0 {
		t.Errorf("after refused imports the daemon lists %+v, %v", res.Items, err)
	}
	if _, err := importImage(t, d, bytes.NewReader(tarOf(t, "x")), "x", client.ImageImportOptions{Changes: []string{"RUN rm -rf /"}}); !cerrdefs.IsInvalidArgument(err) ||
		!strings.Contains(err.Error(), "RUN is not a valid change command") {
		t.Errorf("import with a RUN change = %v", err)
	}
}

func TestPullSaysBerthHasNoRegistry(t *testing.T) {
	t.Parallel()
	d := nettest.NewHost(t).StartDaemon()
	_, err := d.Client.ImagePull(ctxT(t), "busybox", client.ImagePullOptions{})
	if !cerrdefs.IsNotImplemented(err) || !strings.Contains(err.Error(), "cannot pull busybox:latest: berth has no registry; import a root filesystem tar instead") {
		t.Errorf("pull = %v, want 501 saying to import", err)
	}
}

func TestImageUsedByAContainerIsRemovedOnlyByForce(t *testing.T) {
	t.Parallel()
	d := nettest.NewHost(t).StartDaemon()
	id := mustImport(t, d, tarOf(t, "bin/sh"), "busybox")
	c, err := d.Client.ContainerCreate(ctxT(t), client.ContainerCreateOptions{Config: &ctypes.Config{Image: "busybox", Cmd: []string{"true"}}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.Client.ImageRemove(ctxT(t), "busybox", client.ImageRemoveOptions{})
	want := fmt.Sprintf(`conflict: unable to remove repository reference "busybox" (must force) - container %s is using its referenced image %s`, c.ID[:12], id[7:19])
	if !cerrdefs.IsConflict(err) || !strings.Contains(err.Error(), want) {
		t.Fatalf("remove of an image in use = %v, want 409: %s", err, want)
	}
	removed, err := d.Client.ImageRemove(ctxT(t), "busybox", client.ImageRemoveOptions{Force: true})
	if err != nil || len(removed.Items) != 2 || removed.Items[1].Deleted != id {
		t.Fatalf("forced remove = %+v, %v", removed.Items, err)
	}
	// The container keeps its lower layer.
	if _, err := os.Stat(filepath.Join(d.Root, "images", id[7:], "rootfs", "bin", "sh")); err != nil {
		t.Errorf("files of an image a container uses: %v", err)
	}
}

func TestStockDockerCLIImportsListsInspectsAndRemovesImages(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat(dockerCLI); err != nil {
		t.Skipf("the stock Docker CLI is not at %s: %v", dockerCLI, err)
	}
	tarball := nettest.BusyboxImage(t)
	d := nettest.NewHost(t).StartDaemon()

	out := dockerOK(t, d, "import", "-c", `CMD ["sh"]`, tarball, "busybox")
	id := strings.TrimSpace(out)
	if !strings.HasPrefix(id, "sha256:") || len(id) != 71 {
		t.Fatalf("docker import printed %q, want the image ID", out)
	}
	img, err := d.Client.ImageInspect(ctxT(t), id)
	if err != nil {
		t.Fatal(err)
	}
	created, _ := time.Parse(time.RFC3339Nano, img.Created)
	var want strings.Builder
	tw := tabwriter.NewWriter(&want, 10, 1, 3, ' ', 0)
	fmt.Fprintln(tw, "REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE")
	fmt.Fprintf(tw, "busybox\tlatest\t%s\t%s ago\t%s\n", id[7:19], units.HumanDuration(time.Since(created)), units.HumanSizeWithPrecision(float64(img.Size), 3))
	tw.Flush()
	if got := dockerOK(t, d, "image", "ls"); got != want.String() {
		t.Errorf("docker image ls:\n%s\nwant:\n%s", got, want.String())
	}
	if got := dockerOK(t, d, "images", "-q", "--no-trunc"); got != id+"\n" {
		t.Errorf("docker images -q --no-trunc = %q", got)
	}
	if got := dockerOK(t, d, "image", "inspect", "-f", "{{.Id}} {{.RepoTags}} {{.Config.Cmd}} {{.Os}} {{.Comment}}", "busybox"); got != id+" [busybox:latest] [sh] linux Imported from -\n" {
		t.Errorf("docker image inspect -f = %q", got)
	}
	for _, c := range []struct {
		args   []string
		stderr string
	}{
		{[]string{"image", "inspect", "nothere"}, "Error response from daemon: No such image: nothere:latest\n"},
		{[]string{"rmi", "nothere"}, "Error response from daemon: No such image: nothere:latest\n"},
		{[]string{"pull", "-q", "alpine"}, "Error response from daemon: cannot pull alpine:latest: berth has no registry; import a root filesystem tar instead (docker import FILE NAME, or berth image import FILE NAME)\n"},
	} {
		// The CLI of Docker 20.10 words a missing image itself.
		cliOwn := "Error: No such image: " + c.args[len(c.args)-1] + "\n"
		if _, stderr, code := docker(t, d, c.args...); code != 1 || stderr != c.stderr && (c.args[0] == "pull" || stderr != cliOwn) {
			t.Errorf("docker %s: exit %d, stderr %q; want exit 1, %q", strings.Join(c.args, " "), code, stderr, c.stderr)
		}
	}
	if got := dockerOK(t, d, "rmi", "busybox"); got != "Untagged: busybox:latest\nDeleted: "+id+"\n" {
		t.Errorf("docker rmi busybox printed %q", got)
	}
	if got := dockerOK(t, d, "image", "ls", "-q"); got != "" {
		t.Errorf("docker image ls -q after rmi = %q", got)
	}
}

func TestImagePruneTakesDanglingImagesAndLeavesThoseInUse(t *testing.T) {
	t.Parallel()
	d := nettest.NewHost(t).StartDaemon()
	used := mustImport(t, d, tarOf(t, "bin/sh"), "used")
	dangling := mustImport(t, d, tarOf(t, "bin/dangling"), "")
	spare := mustImport(t, d, tarOf(t, "bin/spare"), "spare:1")
	if _, err := d.Client.ContainerCreate(ctxT(t), client.ContainerCreateOptions{Config: &ctypes.Config{Image: "used", Cmd: []string{"true"}}}); err != nil {
		t.Fatal(err)
	}
	ids := func() []string {
		var out []string
		res, err := d.Client.ImageList(ctxT(t), client.ImageListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, img := range res.Items {
			out = append(out, img.ID)
		}
		slices.Sort(out)
		return out
	}

	res, err := d.Client.ImagePrune(ctxT(t), client.ImagePruneOptions{})
	if err != nil || len(res.Report.ImagesDeleted) != 1 || res.Report.ImagesDeleted[0].Deleted != dangling || res.Report.SpaceReclaimed == 0 {
		t.Fatalf("prune of dangling images = %+v, %v; want %s alone", res.Report, err, dangling)
	}
	if got, want := ids(), slices.Sorted(slices.Values([]string{used, spare})); !slices.Equal(got, want) {
		t.Fatalf("after the prune: %v, want %v", got, want)
	}

	all := client.Filters{}
	all.Add("dangling", "false")
	res, err = d.Client.ImagePrune(ctxT(t), client.ImagePruneOptions{Filters: all})
	if err != nil {
		t.Fatal(err)
	}
	var untagged []string
	for _, rm := range res.Report.ImagesDeleted {
		if rm.Untagged != "" {
			untagged = append(untagged, rm.Untagged)
		}
	}
	if !slices.Equal(untagged, []string{"spare:1"}) || res.Report.ImagesDeleted[len(res.Report.ImagesDeleted)-1].Deleted != spare {
		t.Errorf("prune of every unused image = %+v", res.Report.ImagesDeleted)
	}
	if got := ids(); !slices.Equal(got, []string{used}) {
		t.Errorf("after pruning all: %v, want the image in use alone", got)
	}

	bad := client.Filters{}
	bad.Add("dangling", "maybe")
	if _, err := d.Client.ImagePrune(ctxT(t), client.ImagePruneOptions{Filters: bad}); !cerrdefs.IsInvalidArgument(err) {
		t.Errorf("dangling=maybe: %v, want 400", err)
	}
}
