// Command accessbus is the accessbus CLI: the all-in-one `accessbus dev`,
// `accessbus events tail`, and the commands later features add.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := realMain(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "accessbus:", err)
		os.Exit(1)
	}
}

func realMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	root := newRootCmd(stdout, stderr)
	root.SetArgs(args)
	return root.ExecuteContext(ctx)
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "accessbus",
		Short:         "Identity governance for Okta on NATS JetStream",
		Long:          "accessbus syncs an Okta org (users, groups, apps, roles and who has what), publishes every change on NATS JetStream, and carries out provisioning requests from the bus.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(newDevCmd(), newEventsCmd(), newOktasimCmd())
	root.AddCommand(newBenchCmd())
	root.AddCommand(newAccessCmd())
	root.AddCommand(newSyncCmd())
	root.AddCommand(newHooksCmd())
	root.AddCommand(newProvisionCmd())
	root.AddCommand(newMailCmd())
	root.AddCommand(newConnectorsCmd(), newAppsCmd(), newAdminCmd())
	return root
}
