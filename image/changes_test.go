package image

import (
	"fmt"
	"slices"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
)

func configOf(t *testing.T, changes ...string) (container.Config, error) {
	t.Helper()
	cfg := container.Config{Env: slices.Clone(defaultEnv)}
	for _, c := range changes {
		if err := applyChange(&cfg, c); err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

func TestChangesSetTheConfigAsDockerfileInstructions(t *testing.T) {
	for _, c := range []struct {
		changes []string
		field   func(container.Config) any
		want    string
	}{
		{[]string{`CMD ["sh"]`}, func(c container.Config) any { return c.Cmd }, "[sh]"},
		{[]string{`cmd echo "hi there"`}, func(c container.Config) any { return c.Cmd }, `[/bin/sh -c echo "hi there"]`},
		{[]string{`ENTRYPOINT ["/bin/busybox", "httpd", "-f"]`}, func(c container.Config) any { return c.Entrypoint }, "[/bin/busybox httpd -f]"},
		{[]string{`ENV A=1 B="two words" C='$A'`}, func(c container.Config) any { return c.Env[1:] }, "[A=1 B=two words C=$A]"},
		{[]string{`ENV PATH=$PATH:/opt/bin`}, func(c container.Config) any { return c.Env },
			"[PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/opt/bin]"},
		{[]string{`ENV GREETING hello   world`}, func(c container.Config) any { return c.Env[1:] }, "[GREETING=hello   world]"},
		{[]string{`ENV A=1`, `ENV A=2 B=${A}x`}, func(c container.Config) any { return c.Env[1:] }, "[A=2 B=1x]"},
		{[]string{`WORKDIR /srv`, `WORKDIR www`}, func(c container.Config) any { return c.WorkingDir }, "/srv/www"},
		{[]string{`USER nobody:nobody`}, func(c container.Config) any { return c.User }, "nobody:nobody"},
		{[]string{`LABEL a=b "c d"=e`}, func(c container.Config) any { return c.Labels }, "map[a:b c d:e]"},
		{[]string{`VOLUME ["/data", "/logs"]`}, func(c container.Config) any { return c.Volumes }, "map[/data:{} /logs:{}]"},
		{[]string{`VOLUME /data`}, func(c container.Config) any { return c.Volumes }, "map[/data:{}]"},
		{[]string{`STOPSIGNAL SIGINT`}, func(c container.Config) any { return c.StopSignal }, "SIGINT"},
		{[]string{""}, func(c container.Config) any { return c.Cmd }, "[]"},
	} {
		cfg, err := configOf(t, c.changes...)
		if err != nil {
			t.Errorf("%q: %v", c.changes, err)
			continue
		}
		if got := fmt.Sprint(c.field(cfg)); got != c.want {
			t.Errorf("%q gives %s, want %s", c.changes, got, c.want)
		}
	}
}

func TestExposeTakesPortsAndRanges(t *testing.T) {
	cfg, err := configOf(t, "EXPOSE 80 53/udp 8000-8001/tcp")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"80/tcp", "53/udp", "8000/tcp", "8001/tcp"} {
		if _, ok := cfg.ExposedPorts[network.MustParsePort(p)]; !ok {
			t.Errorf("%s not exposed: %v", p, cfg.ExposedPorts)
		}
	}
	if len(cfg.ExposedPorts) != 4 {
		t.Errorf("exposed %v, want 4 ports", cfg.ExposedPorts)
	}
}

func TestBadChangesAreRefusedWithDockersWords(t *testing.T) {
	for change, msg := range map[string]string{
		"RUN echo hi":      "RUN is not a valid change command",
		"HEALTHCHECK NONE": "berth does not support the HEALTHCHECK change",
		"CMD":              "CMD requires at least one argument",
		"ENV lonely":       "lonely must have two arguments",
		"ENV A=1 B":        `Syntax error - can't find = in "B". Must be of the form: name=value`,
		`ENV A="open`:      `unterminated double quote in "A=\"open"`,
		"EXPOSE 70000":     "EXPOSE 70000: invalid start port '70000': value out of range",
		"EXPOSE 80/quic":   `EXPOSE 80/quic: invalid protocol "quic"`,
		`VOLUME [""]`:      "VOLUME specified can not be an empty string",
	} {
		_, err := configOf(t, change)
		if !errdefs.IsInvalidArgument(err) || err.Error() != msg {
			t.Errorf("%q: %v, want invalid argument: %s", change, err, msg)
		}
	}
}
