package daemon

import (
	"bytes"
	"cmp"
	"embed"
	"io/fs"
	"net/http"
	"os"

	"github.com/containerd/errdefs"

	"github.com/berth-net/berth/topology"
)

// uiAssets is the topology page: one HTML file, its script and style,
// nothing fetched from elsewhere, so it works where no other network is.
//
//go:embed ui
var uiAssets embed.FS

// uiRoutes serves the topology picture: GET /topology as data or a picture
// for scripts and the page, GET /ui/ as a page that shows it live.
func (d *Daemon) uiRoutes(mux *http.ServeMux) {
	d.handle(mux, "GET /topology", d.topology)
	pages, err := fs.Sub(uiAssets, "ui")
	if err != nil {
		panic(err) // the directory is embedded: only a build without it gets here
	}
	files := http.StripPrefix("/ui/", http.FileServerFS(pages))
	mux.Handle("GET /ui/", pageHeaders(files))
	mux.Handle("GET /ui", http.RedirectHandler("/ui/", http.StatusMovedPermanently))
}

// pageHeaders keeps what berthd serves to browsers to itself: the page
// runs only its own script, reaches only berthd, and is framed by no
// one (a page of another origin cannot show it to click through it).
func pageHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setPageHeaders(w.Header())
		next.ServeHTTP(w, r)
	})
}

func setPageHeaders(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-cache")
}

// topology answers GET /topology?format=json|svg|dot[&network=NAME…]: the
// picture of the daemon's networks (all, or those named with what is
// attached to them).
func (d *Daemon) topology(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	format := cmp.Or(q.Get("format"), topology.FormatJSON)
	if err := topology.CheckFormat(format); err != nil {
		return errdefs.ErrInvalidArgument.WithMessage(err.Error())
	}
	var only []string
	for _, term := range q["network"] {
		n, err := d.ctrl.LookupNetwork(term)
		if err != nil {
			return err
		}
		only = append(only, n.ID)
	}
	m := topology.Build(d.topologyInput())
	if len(only) > 0 {
		m = m.Only(only...)
	}
	var b bytes.Buffer
	if err := topology.Render(&b, m, format); err != nil {
		return err
	}
	// An SVG opened on its own is a document: it gets the page's rules.
	setPageHeaders(w.Header())
	w.Header().Set("Content-Type", topology.ContentType(format))
	w.Write(b.Bytes())
	return nil
}

// topologyInput is the daemon's state as its API reports it, so that the
// picture drawn here is the one a client draws from the API.
func (d *Daemon) topologyInput() topology.Input {
	hostname, _ := os.Hostname()
	in := topology.Input{Host: hostname, HostID: d.id}
	for _, n := range d.ctrl.Networks() {
		detail, err := d.ctrl.InspectNetwork(n.ID)
		if err != nil {
			// Removed since it was listed.
			continue
		}
		in.Networks = append(in.Networks, d.toInspect(detail))
	}
	for _, c := range d.containers.List() {
		in.Containers = append(in.Containers, d.summary(c))
	}
	return in
}
