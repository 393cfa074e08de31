// Command sync runs the accessbus sync service as its own process.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/accessbus/accessbus/libs/service"
	syncsvc "github.com/accessbus/accessbus/services/sync"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := realMain(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "sync:", err)
		os.Exit(1)
	}
}

func realMain(ctx context.Context) error {
	cfg, err := syncsvc.ConfigFromEnv(ctx)
	if err != nil {
		return err
	}
	return service.Main(ctx, cfg.Config, syncsvc.Service(cfg))
}
