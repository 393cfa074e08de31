package syncsvc

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"math"
	"os"
	"runtime/metrics"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// randRead fills b with random bytes.
var randRead = rand.Read

// PeakRSS returns this process's peak resident set size in bytes (VmHWM of
// /proc/self/status), or 0 where that is not available.
func PeakRSS() int64 { return peakRSSOf("self") }

// peakRSSOf returns the VmHWM of /proc/<pid>/status in bytes, or 0.
func peakRSSOf(pid string) int64 {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		rest, ok := bytes.CutPrefix(sc.Bytes(), []byte("VmHWM:"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) == 0 {
			return 0
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil || kb > math.MaxInt64/1024 {
			return 0
		}
		return kb * 1024
	}
	return 0
}

// processCPUSelf returns the CPU time (user and system) this process has
// used, or 0 where that is not available.
func processCPUSelf() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// clockTicks is Linux's USER_HZ, the unit of /proc/<pid>/stat times.
const clockTicks = 100

// processCPU returns the CPU time (user and system) process pid has used,
// from /proc/<pid>/stat.
func processCPU(pid int) (time.Duration, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// The command name, in parentheses, may hold spaces: fields are
	// counted after its closing parenthesis (field 3 is the state).
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	// utime and stime are fields 14 and 15, that is f[11] and f[12].
	if len(f) < 13 {
		return 0, false
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(ut+st) * time.Second / clockTicks, true
}

// gcSettings returns the garbage collector's GOGC (-1: off) and memory
// limit (math.MaxInt64: none).
func gcSettings() (gogc int, limit int64) {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}, {Name: "/gc/gomemlimit:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() == metrics.KindUint64 {
		gogc = int(int64(s[0].Value.Uint64()))
	}
	if s[1].Value.Kind() == metrics.KindUint64 {
		limit = int64(min(s[1].Value.Uint64(), math.MaxInt64))
	}
	return gogc, limit
}
