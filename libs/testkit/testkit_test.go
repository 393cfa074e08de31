package testkit_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/accessbus/accessbus/libs/testkit"
)

func TestMain(m *testing.M) {
	testkit.ServeNATSIfAsked()
	os.Exit(m.Run())
}

// TestRedisHelper is run in a child process by TestRedisMissing*.
func TestRedisHelper(t *testing.T) {
	if os.Getenv("TESTKIT_CHILD") == "" {
		t.Skip("runs only as a child of TestRedisMissing")
	}
	testkit.Redis(t)
	t.Log("redis answered")
}

func runChild(t *testing.T, env ...string) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestRedisHelper$", "-test.v")
	cmd.Env = append(os.Environ(), append([]string{"TESTKIT_CHILD=1", "REDIS_URL=127.0.0.1:1"}, env...)...)
	out, _ := cmd.CombinedOutput()
	return string(out)
}

func TestRedisMissingFailsLoudlyInCI(t *testing.T) {
	out := runChild(t, "CI=true")
	if !strings.Contains(out, "--- FAIL: TestRedisHelper") || !strings.Contains(out, "does not answer") {
		t.Fatalf("with CI set a missing Redis must fail the test with a clear message:\n%s", out)
	}
}

func TestRedisMissingSkipsOutsideCI(t *testing.T) {
	cmd := runChild(t, "CI=")
	if !strings.Contains(cmd, "--- SKIP: TestRedisHelper") {
		t.Fatalf("outside CI a missing Redis skips:\n%s", cmd)
	}
}

func TestRedisGivesAPrefixAndCleansUp(t *testing.T) {
	rdb, prefix := testkit.Redis(t)
	ctx := context.Background()
	if err := rdb.Set(ctx, prefix+"k", "v", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(prefix, "TestRedisGivesAPrefixAndCleansUp") {
		t.Fatalf("prefix %q does not name the test", prefix)
	}
}

func TestNATSRestartKeepsStreams(t *testing.T) {
	srv := testkit.StartNATS(t)
	js := srv.JetStream(t)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jsConfig()); err != nil {
		t.Fatal(err)
	}
	srv.Restart(t)
	js = srv.JetStream(t)
	if _, err := js.Stream(ctx, "KEEP"); err != nil {
		t.Fatalf("stream lost across restart: %v", err)
	}
}

func TestNATSProcessServes(t *testing.T) {
	srv := testkit.StartNATSProcess(t)
	js := srv.JetStream(t)
	if _, err := js.CreateStream(context.Background(), jsConfig()); err != nil {
		t.Fatal(err)
	}
}
