package daemon_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	ctypes "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"

	"github.com/berth-net/berth/internal/nettest"
)

// volumeNames lists the volumes a filter lets through, by name.
func volumeNames(t *testing.T, d *nettest.Daemon, f client.Filters) []string {
	t.Helper()
	res, err := d.Client.VolumeList(ctxT(t), client.VolumeListOptions{Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, v := range res.Items {
		out = append(out, v.Name)
	}
	slices.Sort(out)
	return out
}

// runToEnd runs a container to its end and returns its output.
func runToEnd(t *testing.T, d *nettest.Daemon, name string, cfg *ctypes.Config, hc *ctypes.HostConfig) string {
	t.Helper()
	ctx := ctxT(t)
	cfg.Image = "busybox"
	res, err := d.Client.ContainerCreate(ctx, client.ContainerCreateOptions{Name: name, Config: cfg, HostConfig: hc})
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	if _, err := d.Client.ContainerStart(ctx, res.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	wait := d.Client.ContainerWait(ctx, res.ID, client.ContainerWaitOptions{})
	select {
	case r := <-wait.Result:
		if r.StatusCode != 0 {
			t.Fatalf("%s exited %d", name, r.StatusCode)
		}
	case err := <-wait.Error:
		t.Fatalf("wait %s: %v", name, err)
	}
	logs, err := d.Client.ContainerLogs(ctx, res.ID, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	var out, errOut strings.Builder
	stdcopy.StdCopy(&out, &errOut, logs)
	return out.String() + errOut.String()
}

func TestVolumesAsDockersLocalDriver(t *testing.T) {
	t.Parallel()
	_, d := containerHost(t)
	ctx := ctxT(t)

	// A named volume, as docker volume create makes it.
	created, err := d.Client.VolumeCreate(ctx, client.VolumeCreateOptions{Name: "data", Labels: map[string]string{"app": "web"}})
	if err != nil {
		t.Fatal(err)
	}
	if v := created.Volume; v.Driver != "local" || v.Scope != "local" || v.Labels["app"] != "web" || !strings.HasSuffix(v.Mountpoint, "/volumes/data/_data") {
		t.Errorf("created volume = %+v, want local, labelled, under <root>/volumes/data/_data", v)
	}
	if _, err := os.Stat(created.Volume.Mountpoint); err != nil {
		t.Errorf("the volume's data directory: %v", err)
	}
	if _, err := d.Client.VolumeCreate(ctx, client.VolumeCreateOptions{Name: "a"}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("a one-letter volume name: err = %v, want invalid argument", err)
	}

	// Named, anonymous, bind and tmpfs mounts in one container.
	bind := t.TempDir()
	if err := os.WriteFile(filepath.Join(bind, "in.txt"), []byte("from the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := runToEnd(t, d, "writer", &ctypes.Config{
		Cmd:     []string{"sh", "-c", "echo kept > /data/file; echo anon > /anon/file; cat /host/in.txt; echo out > /host/out.txt; echo t > /scratch/x && grep -c ' /scratch tmpfs' /proc/mounts"},
		Volumes: map[string]struct{}{"/anon": {}},
	}, &ctypes.HostConfig{
		Binds:  []string{"data:/data", bind + ":/host"},
		Mounts: []mount.Mount{{Type: mount.TypeTmpfs, Target: "/scratch"}},
	})
	if out != "from the host\n1\n" {
		t.Errorf("the container saw %q, want the host's file and a tmpfs at /scratch", out)
	}
	if b, err := os.ReadFile(filepath.Join(bind, "out.txt")); err != nil || string(b) != "out\n" {
		t.Errorf("the bind mount's write reached the host as %q, %v", b, err)
	}
	writer := inspectContainer(t, d, "writer")
	var anon string
	types := map[string]mount.Type{}
	for _, mp := range writer.Mounts {
		types[mp.Destination] = mp.Type
		if mp.Destination == "/anon" {
			anon = mp.Name
		}
	}
	if types["/data"] != mount.TypeVolume || types["/anon"] != mount.TypeVolume || types["/host"] != mount.TypeBind || types["/scratch"] != mount.TypeTmpfs || len(anon) != 64 {
		t.Errorf("inspect shows mounts %+v, want the volume, an anonymous volume, the bind and the tmpfs", writer.Mounts)
	}

	// The data outlives the container and berthd.
	d.Stop()
	d.Start()
	if out := runToEnd(t, d, "reader", &ctypes.Config{Cmd: []string{"cat", "/data/file"}}, &ctypes.HostConfig{Binds: []string{"data:/data:ro"}}); out != "kept\n" {
		t.Errorf("after a restart a new container reads %q from the volume, want kept", out)
	}

	// Filters.
	if got := volumeNames(t, d, client.Filters{}.Add("label", "app=web")); !slices.Equal(got, []string{"data"}) {
		t.Errorf("label filter: %v", got)
	}
	if got := volumeNames(t, d, client.Filters{}.Add("name", "dat")); !slices.Equal(got, []string{"data"}) {
		t.Errorf("name filter: %v", got)
	}
	if got := volumeNames(t, d, client.Filters{}.Add("driver", "other")); len(got) != 0 {
		t.Errorf("driver filter: %v", got)
	}
	if got := volumeNames(t, d, client.Filters{}.Add("dangling", "true")); len(got) != 0 {
		t.Errorf("dangling volumes while writer and reader refer to both: %v", got)
	}

	// In use: refused, force or not.
	for _, force := range []bool{false, true} {
		if _, err := d.Client.VolumeRemove(ctx, "data", client.VolumeRemoveOptions{Force: force}); !errdefs.IsConflict(err) || !strings.Contains(err.Error(), "volume is in use") {
			t.Errorf("remove a volume in use (force=%v): err = %v, want a conflict", force, err)
		}
	}

	// rm -v takes the anonymous volume, not the named one.
	if _, err := d.Client.ContainerRemove(ctx, "writer", client.ContainerRemoveOptions{RemoveVolumes: true}); err != nil {
		t.Fatal(err)
	}
	if got := volumeNames(t, d, nil); !slices.Equal(got, []string{"data"}) {
		t.Errorf("after rm -v of the writer the volumes are %v, want only data", got)
	}
	if _, err := d.Client.ContainerRemove(ctx, "reader", client.ContainerRemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := volumeNames(t, d, client.Filters{}.Add("dangling", "true")); !slices.Equal(got, []string{"data"}) {
		t.Errorf("dangling volumes with no container: %v", got)
	}

	// Prune takes anonymous volumes only, unless all.
	if _, err := d.Client.VolumeCreate(ctx, client.VolumeCreateOptions{}); err != nil {
		t.Fatal(err)
	}
	runToEnd(t, d, "anon", &ctypes.Config{Cmd: []string{"true"}, Volumes: map[string]struct{}{"/v": {}}}, nil)
	if _, err := d.Client.ContainerRemove(ctx, "anon", client.ContainerRemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	if n := len(volumeNames(t, d, nil)); n != 3 {
		t.Fatalf("%d volumes before the prune, want data, one created without a name and one anonymous", n)
	}
	pruned, err := d.Client.VolumePrune(ctx, client.VolumePruneOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(pruned.Report.VolumesDeleted) != 1 || len(volumeNames(t, d, nil)) != 2 {
		t.Errorf("a plain prune removed %v, want the one anonymous volume", pruned.Report.VolumesDeleted)
	}
	pruned, err = d.Client.VolumePrune(ctx, client.VolumePruneOptions{All: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(pruned.Report.VolumesDeleted) != 2 || len(volumeNames(t, d, nil)) != 0 {
		t.Errorf("prune all removed %v, want the two left", pruned.Report.VolumesDeleted)
	}
	if _, err := os.Stat(created.Volume.Mountpoint); !os.IsNotExist(err) {
		t.Errorf("the pruned volume's data is still there: %v", err)
	}
	if _, err := d.Client.VolumeInspect(ctx, "data", client.VolumeInspectOptions{}); !errdefs.IsNotFound(err) {
		t.Errorf("inspect a removed volume: err = %v, want not found", err)
	}
	if _, err := d.Client.VolumeRemove(ctx, "data", client.VolumeRemoveOptions{Force: true}); err != nil {
		t.Errorf("a forced remove of a missing volume: %v", err)
	}
}

func TestMountSpecsAreCheckedAtCreate(t *testing.T) {
	t.Parallel()
	_, d := containerHost(t)
	for _, tc := range []struct {
		hc   ctypes.HostConfig
		want string
	}{
		{ctypes.HostConfig{Binds: []string{"/tmp:/x", "vol:/x"}}, "Duplicate mount point"},
		{ctypes.HostConfig{Binds: []string{"relative/dir:/x"}}, "includes invalid characters for a local volume name"},
		{ctypes.HostConfig{Binds: []string{"vol:x"}}, "mount path must be absolute"},
		{ctypes.HostConfig{Mounts: []mount.Mount{{Type: mount.TypeBind, Target: "/x"}}}, "field Source must not be empty"},
		{ctypes.HostConfig{Mounts: []mount.Mount{{Type: mount.TypeBind, Source: "/nonexistent-berth", Target: "/x"}}}, "bind source path does not exist"},
	} {
		_, err := d.Client.ContainerCreate(ctxT(t), client.ContainerCreateOptions{Config: &ctypes.Config{Image: "busybox", Cmd: []string{"true"}}, HostConfig: &tc.hc})
		if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("binds %q, mounts %+v: err = %v, want invalid argument %q", tc.hc.Binds, tc.hc.Mounts, err, tc.want)
		}
	}
	if got := volumeNames(t, d, nil); len(got) != 0 {
		t.Errorf("refused creates left volumes %v", got)
	}
}
