package main

import (
	"fmt"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	syncv1 "github.com/accessbus/accessbus/libs/gen/accessbus/sync/v1"
)

func newHooksCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "hooks",
		Short: "Register, check and remove a connector's Okta event hook",
		Long: `With an event hook, Okta tells accessbus about a change within a second instead
of at the next sync. accessbus registers the hook with the connector's own token
(its admin needs the Super Administrator role; otherwise register it in the Okta
Admin Console as docs/realtime.md shows).`,
	}
	cmd.AddCommand(newHooksRegisterCmd(), newHooksStatusCmd(), newHooksUnregisterCmd())
	return cmd
}

func newHooksRegisterCmd() *cobra.Command {
	o := syncOptions{}
	var hookURL string
	cmd := &cobra.Command{
		Use:   "register --connector C --url URL",
		Short: "Create, activate and verify the connector's event hook in Okta",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			resp, err := o.client().RegisterHook(cmd.Context(), connect.NewRequest(&syncv1.RegisterHookRequest{ConnectorId: o.connector, Url: hookURL}))
			if err != nil {
				return callError("register the event hook of "+o.connector, o.server, err)
			}
			if o.json {
				return writeJSONLine(cmd.OutOrStdout(), resp.Msg)
			}
			r := resp.Msg.GetRegistration()
			fmt.Fprintf(cmd.OutOrStdout(), "event hook %s registered for %s: Okta delivers %d event types to %s (%s, %s)\n",
				r.GetHookId(), o.connector, len(r.GetEventTypes()), r.GetUrl(), resp.Msg.GetStatus(), resp.Msg.GetVerificationStatus())
			return nil
		},
	}
	o.flags(cmd)
	cmd.Flags().StringVar(&hookURL, "url", "", "public URL of accessbus (https), such as https://accessbus.example.com; /hooks/okta/<connector> is added")
	_ = cmd.MarkFlagRequired("url")
	return cmd
}

func newHooksStatusCmd() *cobra.Command {
	o := syncOptions{}
	cmd := &cobra.Command{
		Use:   "status --connector C",
		Short: "Show the connector's event hook as Okta and accessbus see it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			resp, err := o.client().GetHook(cmd.Context(), connect.NewRequest(&syncv1.GetHookRequest{ConnectorId: o.connector}))
			if err != nil {
				return callError("event hook of "+o.connector, o.server, err)
			}
			out := cmd.OutOrStdout()
			if o.json {
				return writeJSONLine(out, resp.Msg)
			}
			if r := resp.Msg.GetRegistration(); r != nil {
				fmt.Fprintf(out, "hook      %s\nurl       %s\nstatus    %s, %s\nevents    %d types\nregistered %s\n", r.GetHookId(), r.GetUrl(),
					resp.Msg.GetStatus(), resp.Msg.GetVerificationStatus(), len(r.GetEventTypes()), r.GetRegisteredAt().AsTime().Local().Format("2006-01-02 15:04:05"))
			}
			if p := resp.Msg.GetProblem(); p != "" {
				fmt.Fprintf(out, "problem   %s\n", p)
			}
			return nil
		},
	}
	o.flags(cmd)
	return cmd
}

func newHooksUnregisterCmd() *cobra.Command {
	o := syncOptions{}
	cmd := &cobra.Command{
		Use:   "unregister --connector C",
		Short: "Deactivate and delete the connector's event hook in Okta",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			resp, err := o.client().UnregisterHook(cmd.Context(), connect.NewRequest(&syncv1.UnregisterHookRequest{ConnectorId: o.connector}))
			if err != nil {
				return callError("unregister the event hook of "+o.connector, o.server, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "event hook %s of %s removed from Okta; changes now arrive through the System Log\n", resp.Msg.GetHookId(), o.connector)
			return nil
		},
	}
	o.flags(cmd)
	return cmd
}
