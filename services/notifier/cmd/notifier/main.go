// Command notifier runs the accessbus notifier service as its own process.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/accessbus/accessbus/libs/service"
	"github.com/accessbus/accessbus/services/notifier"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := realMain(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "notifier:", err)
		os.Exit(1)
	}
}

func realMain(ctx context.Context) error {
	cfg, err := notifier.ConfigFromEnv(ctx)
	if err != nil {
		return err
	}
	return service.Main(ctx, cfg.Config, notifier.Service(cfg))
}
