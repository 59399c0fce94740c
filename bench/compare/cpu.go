package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// The resolver's cost per query: dnsperf's rate on a small machine is
// bounded by dnsperf's own CPU, so the harness also reads how much CPU the
// resolver's processes used over the rate run and divides it by the
// queries answered.

// atClkTck is the auxiliary vector's entry for USER_HZ, the clock ticks
// per second /proc counts CPU time in.
const atClkTck = 17

// clockTicks is USER_HZ as the kernel told this process; 100 on every
// Linux this harness runs on, which is also what it falls back to.
func clockTicks() int64 {
	if auxv, err := unix.Auxv(); err == nil {
		for _, kv := range auxv {
			if kv[0] == atClkTck && kv[1] > 0 {
				return int64(kv[1])
			}
		}
	}
	return 100
}

// parseStatCPU reads utime + stime, fields 14 and 15 of /proc/<pid>/stat,
// in clock ticks. The command name (field 2, in parentheses) may hold
// spaces and parentheses, so the fields are counted from the last ')';
// the first after it is field 3.
func parseStatCPU(stat string) (int64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed stat %q", stat)
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("stat has %d fields after the command, want at least 13: %q", len(f), stat)
	}
	utime, err := strconv.ParseInt(f[14-3], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("utime in stat: %w", err)
	}
	stime, err := strconv.ParseInt(f[15-3], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("stime in stat: %w", err)
	}
	return utime + stime, nil
}

// processCPU is the user and system CPU time the processes have used so
// far, in clock ticks. A process's stat counts all its threads, those
// that have ended too, so a resolver's goroutines or worker threads are
// all in it; its children are not.
func processCPU(pids []int) (int64, error) {
	if len(pids) == 0 {
		return 0, errors.New("no resolver process to read the CPU time of")
	}
	var sum int64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return 0, fmt.Errorf("CPU time of process %d: %w", pid, err)
		}
		t, err := parseStatCPU(string(b))
		if err != nil {
			return 0, fmt.Errorf("CPU time of process %d: %w", pid, err)
		}
		sum += t
	}
	return sum, nil
}

// cpuPerQuery is the CPU time per answered query, in µs, of ticks clock
// ticks (hz per second) spread over answered queries.
func cpuPerQuery(ticks, hz int64, answered int) (float64, error) {
	switch {
	case answered <= 0:
		return 0, errors.New("no query answered")
	case ticks < 0:
		return 0, fmt.Errorf("the resolver's CPU time went back by %d ticks: was it restarted?", -ticks)
	case hz <= 0:
		return 0, fmt.Errorf("clock ticks per second: %d", hz)
	}
	return float64(ticks) / float64(hz) * 1e6 / float64(answered), nil
}
