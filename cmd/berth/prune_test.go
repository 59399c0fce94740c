package main

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
)

func TestSystemPrunePrunesEachKindAndSumsTheSpace(t *testing.T) {
	d := newFakeDaemon(t)
	d.answer("POST /containers/prune", http.StatusOK, map[string]any{"ContainersDeleted": []string{"c1"}, "SpaceReclaimed": 1000})
	d.answer("POST /networks/prune", http.StatusOK, map[string]any{"NetworksDeleted": []string{"n1", "n2"}})
	d.answer("POST /volumes/prune", http.StatusOK, map[string]any{"VolumesDeleted": []string{"v1"}, "SpaceReclaimed": 500})
	d.answer("POST /images/prune", http.StatusOK, map[string]any{
		"ImagesDeleted": []map[string]string{{"Untagged": "old:1"}, {"Deleted": "sha256:abc"}}, "SpaceReclaimed": 2000})

	question := systemPruneWarning(false, false) + " [y/N] "
	d.runWithInput("n\n", "system", "prune").expect(t, question, "", 0)
	if n := len(d.calls("POST", "/containers/prune")); n != 0 {
		t.Fatalf("pruned %d times without a yes", n)
	}

	d.runWithInput("y\n", "system", "prune").expect(t, question+
		"Deleted Containers:\nc1\n\nDeleted Networks:\nn1\nn2\n\nDeleted Images:\nuntagged: old:1\ndeleted: sha256:abc\n\nTotal reclaimed space: 3kB\n", "", 0)
	if n := len(d.calls("POST", "/volumes/prune")); n != 0 {
		t.Errorf("volumes pruned without --volumes")
	}

	d.run("system", "prune", "-af", "--volumes", "--filter", "until=1h").expect(t,
		"Deleted Containers:\nc1\n\nDeleted Networks:\nn1\nn2\n\nDeleted Volumes:\nv1\n\nDeleted Images:\nuntagged: old:1\ndeleted: sha256:abc\n\nTotal reclaimed space: 3.5kB\n", "", 0)
	vol := d.calls("POST", "/volumes/prune")
	img := d.calls("POST", "/images/prune")
	if len(vol) != 1 || strings.Contains(strings.Join(vol[0].Query["filters"], ""), "until") {
		t.Errorf("volume prune: %+v; want one, without the until filter", vol)
	}
	if f := strings.Join(img[len(img)-1].Query["filters"], ""); !strings.Contains(f, `"dangling":{"false":true}`) || !strings.Contains(f, `"until":{"1h":true}`) {
		t.Errorf("image prune filters with -a: %s", f)
	}
}

func TestProgressDrawsOnATerminalOnly(t *testing.T) {
	var tty bytes.Buffer
	p := startProgress(&tty, 60, "Importing", 1000)
	r := p.Reader(strings.NewReader(strings.Repeat("x", 500)))
	buf := make([]byte, 500)
	if n, _ := r.Read(buf); n != 500 {
		t.Fatalf("read %d", n)
	}
	p.End()
	out := tty.String()
	if !strings.Contains(out, "\rImporting [") || !strings.Contains(out, " 50% 500B/1kB") || !strings.HasSuffix(out, "\r\033[K") {
		t.Errorf("terminal line: %q", out)
	}
	for _, line := range strings.Split(out, "\r") {
		if len(strings.TrimSuffix(line, "\033[K")) > 59 {
			t.Errorf("line wider than the terminal: %q", line)
		}
	}

	var steps bytes.Buffer
	p = startProgress(&steps, 80, "Pruning", 3)
	p.Step("containers")
	p.Step("networks")
	p.End()
	if out := steps.String(); !strings.Contains(out, "Pruning containers [1/3]") || !strings.Contains(out, "Pruning networks [2/3]") {
		t.Errorf("steps: %q", out)
	}

	var pipe bytes.Buffer
	p = startProgress(&pipe, 0, "Importing", 1000)
	p.Add(1000)
	p.End()
	if pipe.Len() != 0 {
		t.Errorf("not a terminal, yet the progress wrote %q", pipe.String())
	}
}
