package testkit

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// envServeNATS, when set to a store directory, makes a test binary serve
// NATS instead of running tests (see ServeNATSIfAsked).
const envServeNATS = "ACCESSBUS_TESTKIT_SERVE_NATS"

// ServeNATSIfAsked turns the current test binary into a NATS server when
// StartNATSProcess re-executes it; call it first in TestMain. It returns
// (and the tests run) when the binary was started normally.
func ServeNATSIfAsked() {
	dir := os.Getenv(envServeNATS)
	if dir == "" {
		return
	}
	ns, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true, StoreDir: dir,
		NoLog: true, NoSigs: true, JetStreamMaxMemory: 1 << 30,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "serve nats:", err)
		os.Exit(2)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		fmt.Fprintln(os.Stderr, "serve nats: not ready in 10s")
		os.Exit(2)
	}
	fmt.Println("NATS_URL=" + ns.ClientURL())
	// Serve until the parent closes our stdin (or dies).
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	ns.Shutdown()
	os.Exit(0)
}

// StartNATSProcess starts a JetStream server in a child process (the test
// binary itself, which must call ServeNATSIfAsked in TestMain), so that a
// benchmark measures the client the way production runs it: the server in
// its own process, not sharing the client's heap and garbage collector.
func StartNATSProcess(tb testing.TB) *NATS {
	tb.Helper()
	dir := tb.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envServeNATS+"="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start NATS process: %v", err)
	}
	tb.Cleanup(func() {
		_ = stdin.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if url, ok := strings.CutPrefix(sc.Text(), "NATS_URL="); ok {
			return &NATS{URL: url, StoreDir: dir}
		}
	}
	tb.Fatalf("NATS process exited without serving: %v", sc.Err())
	return nil
}
