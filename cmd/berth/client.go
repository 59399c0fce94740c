package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/berth-net/berth/api"
	"github.com/moby/moby/client"
)

const (
	hostEnv     = "BERTH_HOST"
	defaultHost = "unix:///run/berth/berth.sock"
)

// host is the daemon address: -H, else $BERTH_HOST, else the default socket.
func (c *cli) host() string {
	if c.hostFlag != "" {
		return c.hostFlag
	}
	if h, _ := c.lookupEnv(hostEnv); h != "" {
		return h
	}
	return defaultHost
}

// client returns the Docker Engine API client. Its first request asks
// /_ping for the daemon's API version and uses the lower of that and its own
// for every request after.
//
// The client of berth's own routes is made here too, first: api.NewClient
// checks the host and says what a valid one looks like, which the Docker
// client does not.
func (c *cli) client() (*client.Client, error) {
	if c.docker != nil {
		return c.docker, nil
	}
	host := c.host()
	userAgent := "berth/" + clientVersion
	bc, err := api.NewClient(host)
	if err != nil {
		return nil, err
	}
	bc.SetUserAgent(userAgent)
	dc, err := client.New(
		client.WithHost(host),
		client.WithAPIVersionNegotiation(),
		client.WithUserAgent(userAgent),
	)
	if err != nil {
		return nil, err
	}
	c.docker, c.berth = dc, bc
	return dc, nil
}

// berthClient returns the client for berth's own routes and for requests
// whose bodies the Docker client's types would not carry unchanged. It
// speaks the API version the Docker client negotiates, so both send the same
// /v1.NN prefix; the daemon is asked once.
func (c *cli) berthClient(ctx context.Context) (*api.Client, error) {
	dc, err := c.client()
	if err != nil {
		return nil, err
	}
	if !c.negotiated {
		if _, err := dc.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
			return nil, err
		}
		c.berth.SetVersion(dc.ClientVersion())
		c.negotiated = true
	}
	return c.berth, nil
}

func (c *cli) close() {
	if c.docker != nil {
		_ = c.docker.Close()
		c.berth.Close()
	}
}

// versionLess compares API versions such as "1.41" and "1.44".
func versionLess(a, b string) bool {
	am, an, _ := strings.Cut(a, ".")
	bm, bn, _ := strings.Cut(b, ".")
	if am != bm {
		return atoi(am) < atoi(bm)
	}
	return atoi(an) < atoi(bn)
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// errorText is how an error is shown to the user: the daemon's answers in
// the docker CLI's words, and a daemon out of reach named as berth's, where
// the Docker client would name Docker.
func (c *cli) errorText(err error) string {
	var answer *api.Error
	var unreachable *url.Error
	switch {
	case errors.As(err, &answer):
		return "Error response from daemon: " + answer.Message
	case client.IsErrConnectionFailed(err), errors.As(err, &unreachable):
		return connectErrorText(c.host(), err)
	}
	return err.Error()
}

// connectErrorText words a failure to reach the daemon at all.
func connectErrorText(host string, err error) string {
	if errors.Is(err, os.ErrPermission) || errors.Is(err, syscall.EACCES) ||
		strings.Contains(err.Error(), "permission denied") {
		return fmt.Sprintf("permission denied while trying to connect to the berth daemon socket at %s", host)
	}
	return fmt.Sprintf("Cannot connect to the berth daemon at %s. Is the berth daemon running?", host)
}
