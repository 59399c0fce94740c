package container

import (
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	ctypes "github.com/moby/moby/api/types/container"
)

func TestRestartBackoffDoublesFromATenthOfASecondUpToAMinute(t *testing.T) {
	// Consecutive quick crashes, as dockerd schedules them.
	want := []time.Duration{
		100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond,
		1600 * time.Millisecond, 3200 * time.Millisecond, 6400 * time.Millisecond, 12800 * time.Millisecond,
		25600 * time.Millisecond, 51200 * time.Millisecond, time.Minute, time.Minute,
	}
	var got []time.Duration
	last := time.Duration(0)
	for range want {
		last = restartDelay(last, time.Second)
		got = append(got, last)
	}
	if !slices.Equal(got, want) {
		t.Errorf("delays %v, want %v", got, want)
	}
}

func TestRestartBackoffStartsOverAfterTenSecondsOfRunning(t *testing.T) {
	for _, c := range []struct {
		last, ran, want time.Duration
	}{
		{time.Minute, 10 * time.Second, 100 * time.Millisecond},
		{time.Minute, time.Hour, 100 * time.Millisecond},
		{time.Minute, 10*time.Second - time.Millisecond, time.Minute},
		{3200 * time.Millisecond, 9 * time.Second, 6400 * time.Millisecond},
		{0, 0, 100 * time.Millisecond},
	} {
		if got := restartDelay(c.last, c.ran); got != c.want {
			t.Errorf("after %v that ran %v: %v, want %v", c.last, c.ran, got, c.want)
		}
	}
}

func TestRestartPolicyDecidesByExitCodeStopByHandAndCount(t *testing.T) {
	policy := func(name string, max int) ctypes.RestartPolicy {
		return ctypes.RestartPolicy{Name: ctypes.RestartPolicyMode(name), MaximumRetryCount: max}
	}
	for _, c := range []struct {
		name     string
		policy   ctypes.RestartPolicy
		code     int
		byHand   bool
		restarts int
		want     bool
	}{
		{"no policy", policy("", 0), 1, false, 0, false},
		{"no", policy("no", 0), 1, false, 0, false},
		{"always after success", policy("always", 0), 0, false, 0, true},
		{"always after a stop by hand", policy("always", 0), 137, true, 5, true},
		{"unless-stopped", policy("unless-stopped", 0), 0, false, 3, true},
		{"unless-stopped stopped by hand", policy("unless-stopped", 0), 143, true, 0, false},
		{"on-failure after success", policy("on-failure", 0), 0, false, 0, false},
		{"on-failure after failure, no limit", policy("on-failure", 0), 3, false, 1000, true},
		{"on-failure with retries left", policy("on-failure", 2), 3, false, 1, true},
		{"on-failure without retries left", policy("on-failure", 2), 3, false, 2, false},
		{"on-failure stopped by hand", policy("on-failure", 0), 143, true, 0, true},
		{"unknown", policy("sometimes", 0), 1, false, 0, false},
	} {
		if got := shouldRestart(c.policy, c.code, c.byHand, c.restarts); got != c.want {
			t.Errorf("%s: restart = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestRestartPolicyValidationHasDockersMessages(t *testing.T) {
	for _, c := range []struct {
		host ctypes.HostConfig
		want string
	}{
		{ctypes.HostConfig{RestartPolicy: ctypes.RestartPolicy{Name: "sometimes"}},
			"invalid restart policy: unknown policy 'sometimes'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"},
		{ctypes.HostConfig{RestartPolicy: ctypes.RestartPolicy{Name: "always", MaximumRetryCount: 3}},
			"invalid restart policy: maximum retry count can only be used with 'on-failure'"},
		{ctypes.HostConfig{RestartPolicy: ctypes.RestartPolicy{Name: "no", MaximumRetryCount: -1}},
			"invalid restart policy: maximum retry count can only be used with 'on-failure' and cannot be negative"},
		{ctypes.HostConfig{RestartPolicy: ctypes.RestartPolicy{Name: "on-failure", MaximumRetryCount: -1}},
			"invalid restart policy: maximum retry count cannot be negative"},
		{ctypes.HostConfig{AutoRemove: true, RestartPolicy: ctypes.RestartPolicy{Name: "unless-stopped"}},
			"can't create 'AutoRemove' container with restart policy"},
	} {
		err := validateRestartPolicy(&c.host)
		if err == nil || err.Error() != c.want || !errdefs.IsInvalidArgument(err) {
			t.Errorf("%+v: %v, want the invalid argument %q", c.host.RestartPolicy, err, c.want)
		}
	}
	for _, ok := range []ctypes.HostConfig{
		{}, {RestartPolicy: ctypes.RestartPolicy{Name: "no"}}, {AutoRemove: true, RestartPolicy: ctypes.RestartPolicy{Name: "no"}},
		{RestartPolicy: ctypes.RestartPolicy{Name: "on-failure", MaximumRetryCount: 5}}, {RestartPolicy: ctypes.RestartPolicy{Name: "always"}},
	} {
		if err := validateRestartPolicy(&ok); err != nil {
			t.Errorf("%+v refused: %v", ok.RestartPolicy, err)
		}
	}
}

func TestKillCallsOffRestartsUnlessTheSignalMayBeHandled(t *testing.T) {
	for _, c := range []struct {
		stopSignal string
		sig        syscall.Signal
		want       bool
	}{
		{"", syscall.SIGHUP, true},
		{"", syscall.SIGKILL, true},
		{"SIGUSR1", syscall.SIGKILL, true},
		{"SIGUSR1", syscall.SIGUSR1, true},
		{"USR1", syscall.SIGUSR1, true},
		{"SIGUSR1", syscall.SIGHUP, false},
	} {
		if got := stopsRestarts(c.stopSignal, c.sig); got != c.want {
			t.Errorf("stop signal %q, kill with %v: calls off restarts = %v, want %v", c.stopSignal, c.sig, got, c.want)
		}
	}
}

func TestBootStartsDependenciesFirst(t *testing.T) {
	// web shares app's network and links to db; app links to db.
	deps := map[string][]string{"web": {"app", "db"}, "app": {"db"}, "db": nil, "x": {"y"}, "y": {"x"}}
	got := bootOrder([]string{"web", "app", "db", "x", "y"}, func(s string) []string { return deps[s] })
	if want := []string{"db", "app", "web", "x", "y"}; !slices.Equal(got, want) {
		t.Errorf("order %v, want %v", got, want)
	}
	// A dependency not to be started does not hold anyone back.
	got = bootOrder([]string{"web"}, func(s string) []string { return deps[s] })
	if want := []string{"web"}; !slices.Equal(got, want) {
		t.Errorf("order %v, want %v", got, want)
	}
}
