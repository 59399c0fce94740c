package main

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// imagesJSON is three images as berthd lists them, created 2 weeks, 5
// minutes and 400 days ago. The tables expected of them below are what the
// Docker 28.2 CLI printed for the same answer.
func imagesJSON() string {
	now := time.Now()
	ago := func(d time.Duration) int64 { return now.Add(-d).Unix() }
	return fmt.Sprintf(`[
 {"Id":"sha256:aaaa1111bbbb2222cccc3333dddd4444eeee5555ffff66667777888899990000","ParentId":"",
  "RepoTags":["busybox:latest","local/busybox:1.35"],"RepoDigests":[],"Created":%d,"Size":4261550,"SharedSize":-1,"Labels":null,"Containers":2},
 {"Id":"sha256:bbbb1111bbbb2222cccc3333dddd4444eeee5555ffff66667777888899990000","ParentId":"",
  "RepoTags":[],"RepoDigests":[],"Created":%d,"Size":1234,"SharedSize":-1,"Labels":{},"Containers":-1},
 {"Id":"sha256:dddd1111bbbb2222cccc3333dddd4444eeee5555ffff66667777888899990000","ParentId":"",
  "RepoTags":["registry.example.com:5000/team/alpine:3.19"],"RepoDigests":[],"Created":%d,"Size":1300000000,"SharedSize":-1,"Labels":{},"Containers":-1}
]`, ago(14*24*time.Hour+time.Minute), ago(5*time.Minute+10*time.Second), ago(400*24*time.Hour))
}

func serveImages(d *fakeDaemon) {
	d.handle("GET /images/json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, imagesJSON())
	})
}

func TestImagesPrintsDockersTableByteForByte(t *testing.T) {
	d := newFakeDaemon(t)
	serveImages(d)

	const table = "" +
		"REPOSITORY                              TAG       IMAGE ID       CREATED         SIZE\n" +
		"busybox                                 latest    aaaa1111bbbb   2 weeks ago     4.26MB\n" +
		"local/busybox                           1.35      aaaa1111bbbb   2 weeks ago     4.26MB\n" +
		"<none>                                  <none>    bbbb1111bbbb   5 minutes ago   1.23kB\n" +
		"registry.example.com:5000/team/alpine   3.19      dddd1111bbbb   13 months ago   1.3GB\n"
	d.run("images").expect(t, table, "", 0)
	d.run("image", "ls").expect(t, table, "", 0)
	d.run("image", "list", "--no-trunc").expect(t, ""+
		"REPOSITORY                              TAG       IMAGE ID                                                                  CREATED         SIZE\n"+
		"busybox                                 latest    sha256:aaaa1111bbbb2222cccc3333dddd4444eeee5555ffff66667777888899990000   2 weeks ago     4.26MB\n"+
		"local/busybox                           1.35      sha256:aaaa1111bbbb2222cccc3333dddd4444eeee5555ffff66667777888899990000   2 weeks ago     4.26MB\n"+
		"<none>                                  <none>    sha256:bbbb1111bbbb2222cccc3333dddd4444eeee5555ffff66667777888899990000   5 minutes ago   1.23kB\n"+
		"registry.example.com:5000/team/alpine   3.19      sha256:dddd1111bbbb2222cccc3333dddd4444eeee5555ffff66667777888899990000   13 months ago   1.3GB\n",
		"", 0)
}

func TestImagesQuietTemplatesAndJSON(t *testing.T) {
	d := newFakeDaemon(t)
	serveImages(d)

	// One ID per row, as docker prints them: twice for an image of two tags.
	d.run("images", "-q").expect(t, "aaaa1111bbbb\naaaa1111bbbb\nbbbb1111bbbb\ndddd1111bbbb\n", "", 0)
	d.run("images", "--format", "{{.Repository}}:{{.Tag}} {{.Containers}} {{.VirtualSize}} {{.SharedSize}} {{.UniqueSize}} {{.Digest}}").expect(t, ""+
		"busybox:latest 2 4.262MB N/A N/A <none>\n"+
		"local/busybox:1.35 2 4.262MB N/A N/A <none>\n"+
		"<none>:<none> N/A 1.234kB N/A N/A <none>\n"+
		"registry.example.com:5000/team/alpine:3.19 N/A 1.3GB N/A N/A <none>\n", "", 0)

	r := d.run("images", "--format", "json")
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if r.code != 0 || len(lines) != 4 {
		t.Fatalf("got %+v, want four JSON lines", r)
	}
	jsonEqual(t, []byte(lines[2]), fmt.Sprintf(`{"Containers":"N/A","CreatedAt":%q,"CreatedSince":"5 minutes ago",`+
		`"Digest":"<none>","ID":"bbbb1111bbbb","Repository":"<none>","SharedSize":"N/A","Size":"1.23kB","Tag":"<none>",`+
		`"UniqueSize":"N/A","VirtualSize":"1.234kB"}`,
		time.Unix(time.Now().Add(-5*time.Minute-10*time.Second).Unix(), 0).String()))
}

func TestImagesSendsTheRepositoryAsAReferenceFilter(t *testing.T) {
	d := newFakeDaemon(t)
	d.answerRaw("GET /images/json", "[]")

	d.run("images", "-a", "-f", "dangling=false", "busybox").expect(t, "REPOSITORY   TAG       IMAGE ID   CREATED   SIZE\n", "", 0)
	want := "GET /images/json?all=1&filters=%7B%22dangling%22%3A%7B%22false%22%3Atrue%7D%2C%22reference%22%3A%7B%22busybox%22%3Atrue%7D%7D"
	if got := d.paths(); !slices.Equal(got, []string{want}) {
		t.Errorf("requests %q, want %q", got, want)
	}
	runBerth("", nil, "images", "a", "b").expect(t, "", ""+
		"\"berth images\" requires at most 1 argument.\n"+
		"See 'berth images --help'.\n\n"+
		"Usage:  berth images [OPTIONS] [REPOSITORY[:TAG]]\n\n"+
		"List images\n", 1)
}

func TestImageRmPrintsWhatWentAndTheFailuresAfter(t *testing.T) {
	d := newFakeDaemon(t)
	d.handle("DELETE /images/{name}", func(w http.ResponseWriter, r *http.Request) {
		switch name := r.PathValue("name"); name {
		case "busybox":
			writeJSON(w, http.StatusOK, []map[string]string{
				{"Untagged": "busybox:latest"}, {"Deleted": "sha256:aaaa1111bbbb2222cccc3333dddd4444eeee5555ffff66667777888899990000"},
			})
		case "inuse":
			writeError(w, http.StatusConflict, `conflict: unable to remove repository reference "inuse" (must force) - container 0f768a80860a is using its referenced image aaaa1111bbbb`)
		default:
			writeError(w, http.StatusNotFound, "No such image: "+name)
		}
	})

	d.run("rmi", "nope", "busybox", "inuse").expect(t, ""+
		"Untagged: busybox:latest\n"+
		"Deleted: sha256:aaaa1111bbbb2222cccc3333dddd4444eeee5555ffff66667777888899990000\n", ""+
		"Error response from daemon: No such image: nope\n"+
		`Error response from daemon: conflict: unable to remove repository reference "inuse" (must force) - container 0f768a80860a is using its referenced image aaaa1111bbbb`+"\n", 1)
	// With --force, an image that is not there is said so, but fails nothing.
	d.run("image", "rm", "-f", "nope", "busybox").expect(t, ""+
		"Untagged: busybox:latest\n"+
		"Deleted: sha256:aaaa1111bbbb2222cccc3333dddd4444eeee5555ffff66667777888899990000\n",
		"Error response from daemon: No such image: nope\n", 0)
	d.run("image", "remove", "--no-prune", "nope").expect(t, "", "Error response from daemon: No such image: nope\n", 1)

	queries := []string{}
	for _, name := range []string{"nope", "busybox", "inuse"} {
		for _, c := range d.calls("DELETE", "/images/"+name) {
			queries = append(queries, name+"?"+encodeQuery(c.Query))
		}
	}
	want := []string{"nope?", "nope?force=1", "nope?noprune=1", "busybox?", "busybox?force=1", "inuse?"}
	if !slices.Equal(queries, want) {
		t.Errorf("removals %q, want %q", queries, want)
	}
}

func TestImageImportSendsTheTarballAndPrintsTheID(t *testing.T) {
	d := newFakeDaemon(t)
	d.handle("POST /images/create", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"status":"sha256:9999888877776666555544443333222211110000aaaabbbbccccddddeeeeffff"}`+"\n")
	})
	tarball := writeFile(t, "not really a tar")

	const id = "sha256:9999888877776666555544443333222211110000aaaabbbbccccddddeeeeffff\n"
	d.run("image", "import", "-c", `CMD ["sh"]`, "-c", "ENV A=1", "-m", "msg", tarball, "busybox:1").expect(t, id, "", 0)
	d.runWithInput("from stdin", "import", "-", "local/busybox").expect(t, id, "", 0)

	calls := d.calls("POST", "/images/create")
	if len(calls) != 2 {
		t.Fatalf("import sent %d times, want 2", len(calls))
	}
	if q := encodeQuery(calls[0].Query); q != "changes=CMD+%5B%22sh%22%5D&changes=ENV+A%3D1&fromSrc=-&message=msg&repo=busybox%3A1" {
		t.Errorf("query %q", q)
	}
	if string(calls[0].Body) != "not really a tar" || string(calls[1].Body) != "from stdin" {
		t.Errorf("bodies %q and %q, want the file's and stdin's", calls[0].Body, calls[1].Body)
	}
}

func TestImageImportReportsErrors(t *testing.T) {
	d := newFakeDaemon(t)
	d.handle("POST /images/create", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"errorDetail":{"message":"archive/tar: invalid tar header"},"error":"archive/tar: invalid tar header"}`+"\n")
	})
	tarball := writeFile(t, "junk")

	d.run("import", tarball).expect(t, "", "archive/tar: invalid tar header\n", 1)
	d.run("import", "/nonexistent.tar").expect(t, "", "open /nonexistent.tar: no such file or directory\n", 1)
	d.run("import", tarball, "Bad:Ref").expect(t, "",
		"invalid reference format: repository name (library/Bad) must be lowercase\n", 1)
	if n := len(d.calls("POST", "/images/create")); n != 1 {
		t.Errorf("import sent %d times, want once", n)
	}
}

func TestImageInspectPrintsTheDaemonsJSON(t *testing.T) {
	d := newFakeDaemon(t)
	d.handle("GET /images/{name}/json", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("name") != "busybox" {
			writeError(w, http.StatusNotFound, "No such image: "+r.PathValue("name"))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"Id":"sha256:aaaa","RepoTags":["busybox:latest"],"Config":{"Cmd":["sh"],"Env":["PATH=/bin"]},"Size":4261550}`)
	})

	d.run("image", "inspect", "busybox", "nope").expect(t, `[
    {
        "Id": "sha256:aaaa",
        "RepoTags": [
            "busybox:latest"
        ],
        "Config": {
            "Cmd": [
                "sh"
            ],
            "Env": [
                "PATH=/bin"
            ]
        },
        "Size": 4261550
    }
]
`, "Error: No such image: nope\n", 1)
	d.run("image", "inspect", "-f", "{{.Id}} {{.Config.Cmd}} {{.Size}}", "busybox").expect(t, "sha256:aaaa [sh] 4261550\n", "", 0)
}
