package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

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
(its admin needs the Super Administrator role); otherwise create it in the Okta
Admin Console and give accessbus its secret with set-secret (docs/realtime.md).
Calls carry your API key (ACCESSBUS_API_KEY, else accessbus dev's
<data-dir>/admin-api-key); changing a hook takes an owner of the connector
(Connector Administrator) or a Super Administrator.`,
	}
	cmd.AddCommand(newHooksRegisterCmd(), newHooksStatusCmd(), newHooksUnregisterCmd(), newHooksSetSecretCmd())
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
			r := resp.Msg.GetRegistration()
			switch {
			case r.GetConsoleManaged():
				fmt.Fprintf(out, "hook      managed in the Okta Admin Console\nurl       https://<accessbus host>%s\nheader    Authorization (secret version %d)\nregistered %s\nevents    %d types to subscribe to:\n",
					r.GetUrl(), r.GetSecretVersion(), r.GetRegisteredAt().AsTime().Local().Format("2006-01-02 15:04:05"), len(r.GetEventTypes()))
				for _, t := range r.GetEventTypes() {
					fmt.Fprintf(out, "  %s\n", t)
				}
			case r != nil:
				fmt.Fprintf(out, "hook      %s\nurl       %s\nstatus    %s, %s\nevents    %d types\nregistered %s\n", r.GetHookId(), r.GetUrl(),
					resp.Msg.GetStatus(), resp.Msg.GetVerificationStatus(), len(r.GetEventTypes()), r.GetRegisteredAt().AsTime().Local().Format("2006-01-02 15:04:05"))
			}
			if n := resp.Msg.GetNote(); n != "" {
				fmt.Fprintf(out, "note      %s\n", n)
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
		Short: "Deactivate and delete the connector's event hook in Okta (or forget one managed in the Okta Admin Console)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			resp, err := o.client().UnregisterHook(cmd.Context(), connect.NewRequest(&syncv1.UnregisterHookRequest{ConnectorId: o.connector}))
			if err != nil {
				return callError("unregister the event hook of "+o.connector, o.server, err)
			}
			if o.json {
				return writeJSONLine(cmd.OutOrStdout(), resp.Msg)
			}
			if resp.Msg.GetConsoleManaged() {
				fmt.Fprintf(cmd.OutOrStdout(), "hook secret of %s deleted: accessbus now refuses the hook's deliveries; changes arrive through the System Log.\n"+
					"Delete the event hook in the Okta Admin Console too (Workflow > Event Hooks: deactivate, then delete).\n", o.connector)
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "event hook %s of %s removed from Okta; changes now arrive through the System Log\n", resp.Msg.GetHookId(), o.connector)
			return nil
		},
	}
	o.flags(cmd)
	return cmd
}

// maxSecretInput bounds what set-secret reads from standard input: well
// above the API's limit, so that the API says what is wrong.
const maxSecretInput = 64 << 10

// readSecret reads a secret from r, dropping one trailing newline (as
// echo or a file gives it) and nothing else.
func readSecret(r io.Reader) (string, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxSecretInput+1))
	if err != nil {
		return "", fmt.Errorf("read the secret from standard input: %w", err)
	}
	if len(b) > maxSecretInput {
		return "", fmt.Errorf("standard input holds more than %d bytes: give only the secret", maxSecretInput)
	}
	s := string(b)
	if t, ok := strings.CutSuffix(s, "\r\n"); ok {
		s = t
	} else {
		s = strings.TrimSuffix(s, "\n")
	}
	return s, nil
}

func newHooksSetSecretCmd() *cobra.Command {
	o := syncOptions{}
	var fromStdin bool
	cmd := &cobra.Command{
		Use:   "set-secret --connector C --secret-stdin",
		Short: "Give accessbus the secret of an event hook created in the Okta Admin Console",
		Long: `For an event hook created by hand in the Okta Admin Console (Workflow > Event
Hooks), stores the value typed there as the Authentication secret, so that
accessbus accepts the hook's deliveries. The secret is read from standard input
(one trailing newline is dropped); it must have at least 16 characters and no
whitespace. Run it before pressing Verify in the console. Okta is not called.`,
		Example: `  openssl rand -base64 32 > hook-secret   # type the same value in the Okta Admin Console
  accessbus hooks set-secret --connector okta --secret-stdin < hook-secret`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !fromStdin {
				// Never as a flag value: it would stay in the shell's history.
				return errors.New("give the secret on standard input with --secret-stdin")
			}
			secret, err := readSecret(cmd.InOrStdin())
			if err != nil {
				return err
			}
			resp, err := o.client().SetHookSecret(cmd.Context(), connect.NewRequest(&syncv1.SetHookSecretRequest{ConnectorId: o.connector, Secret: secret}))
			if err != nil {
				return callError("set the hook secret of "+o.connector, o.server, err)
			}
			out := cmd.OutOrStdout()
			if o.json {
				return writeJSONLine(out, resp.Msg)
			}
			r := resp.Msg.GetRegistration()
			what := "stored"
			if resp.Msg.GetReplaced() {
				what = "stored, replacing the previous one"
			}
			fmt.Fprintf(out, "hook secret of %s %s (version %d); accessbus accepts deliveries that carry it.\n", o.connector, what, r.GetSecretVersion())
			fmt.Fprintf(out, "In the Okta Admin Console (Workflow > Event Hooks > Create Event Hook, or the hook you created):\n")
			fmt.Fprintf(out, "  URL                    https://<accessbus host>%s\n", r.GetUrl())
			fmt.Fprintf(out, "  Authentication field   Authorization\n")
			fmt.Fprintf(out, "  Authentication secret  the value given here\n")
			fmt.Fprintf(out, "  Subscribe to these %d event types (`accessbus hooks status --connector %s` lists them again):\n", len(r.GetEventTypes()), o.connector)
			for _, t := range r.GetEventTypes() {
				fmt.Fprintf(out, "    %s\n", t)
			}
			fmt.Fprintf(out, "Then save the hook and press Verify: accessbus answers Okta's verification request.\n")
			return nil
		},
	}
	o.flags(cmd)
	cmd.Flags().BoolVar(&fromStdin, "secret-stdin", false, "read the secret (the hook's Authorization header value) from standard input (required)")
	return cmd
}
