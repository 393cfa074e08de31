package bus_test

import (
	"os"
	"testing"

	"github.com/accessbus/accessbus/libs/testkit"
)

func TestMain(m *testing.M) {
	testkit.ServeNATSIfAsked()
	os.Exit(m.Run())
}
