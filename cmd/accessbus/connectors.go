package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	catalogv1 "github.com/accessbus/accessbus/libs/gen/accessbus/catalog/v1"
	"github.com/accessbus/accessbus/libs/gen/accessbus/catalog/v1/catalogv1connect"
	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
	syncv1 "github.com/accessbus/accessbus/libs/gen/accessbus/sync/v1"
	"github.com/accessbus/accessbus/libs/gen/accessbus/sync/v1/syncv1connect"
)

// maxTokenInput bounds what --token-stdin reads: an Okta token is 42
// characters.
const maxTokenInput = 64 << 10

func (o *apiOptions) connectorsClient() catalogv1connect.ConnectorServiceClient {
	return catalogv1connect.NewConnectorServiceClient(o.httpClient(), o.base(), apiKeyOption(o.dataDir))
}

func (o *apiOptions) syncClient() syncv1connect.SyncServiceClient {
	return syncv1connect.NewSyncServiceClient(o.httpClient(), o.base(), apiKeyOption(o.dataDir))
}

func newConnectorsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "connectors",
		Short: "Add Okta connectors, choose their owners, set their domain and token, and watch them sync",
		Long: `Talks to the ConnectorService of a running accessbus (--server, default the local
accessbus dev) with your API key: ACCESSBUS_API_KEY, else the admin-api-key file
accessbus dev writes in its data dir (--data-dir). docs/connectors.md walks
through setting up a connector.

A connector starts "not connected"; once an owner sets its Okta domain and API
token (checked against Okta when saved) the sync moves it to "syncing", then
"connected", or "error" with the reason.`,
	}
	cmd.AddCommand(newConnectorsAddCmd(), newConnectorsSetOwnersCmd(), newConnectorsSetSettingsCmd(),
		newConnectorsListCmd(), newConnectorsGetCmd(), newConnectorsLogsCmd())
	return cmd
}

func newConnectorsAddCmd() *cobra.Command {
	o := apiOptions{}
	var appNew, app, id string
	var owners []string
	cmd := &cobra.Command{
		Use:   "add (--app-new NAME | --app APP_ID) [--owner EMAIL ...] [--id ID]",
		Short: "Add an Okta connector to a new or an existing application (takes Connector Administrator or Super Administrator)",
		Long: `Adds an Okta connector to a new managed application (--app-new NAME) or to an
application of the catalog (--app APP_ID, from 'accessbus apps list'; a discovered,
unmanaged one becomes managed). Each owner (--owner, repeatable; default you) must
hold the Connector Administrator or Super Administrator role. The connector id
(--id) defaults to one made from the application's name.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r := &catalogv1.AddConnectorRequest{ConnectorId: id, OwnerEmails: owners}
			if appNew != "" {
				r.Application = &catalogv1.AddConnectorRequest_NewApplicationName{NewApplicationName: appNew}
			} else {
				r.Application = &catalogv1.AddConnectorRequest_ApplicationId{ApplicationId: app}
			}
			resp, err := o.connectorsClient().AddConnector(cmd.Context(), connect.NewRequest(r))
			if err != nil {
				return callError("add the connector", o.server, err)
			}
			out := cmd.OutOrStdout()
			if o.json {
				return writeJSONLine(out, resp.Msg)
			}
			c, a := resp.Msg.GetConnector(), resp.Msg.GetApplication()
			fmt.Fprintf(out, "connector %s added to application %q (%s)\n", c.GetId(), a.GetName(), a.GetId())
			fmt.Fprintf(out, "owners     %s\n", strings.Join(ownerList(c), ", "))
			fmt.Fprintf(out, "status     %s\n", statusLine(c))
			fmt.Fprintf(out, "next: an owner sets its Okta domain and API token:\n  accessbus connectors set-settings %s --domain acme.okta.com --token-stdin < token.txt\n", c.GetId())
			return nil
		},
	}
	o.flags(cmd)
	f := cmd.Flags()
	f.StringVar(&appNew, "app-new", "", "create a new managed application with this name")
	f.StringVar(&app, "app", "", "add the connector to this application id (accessbus apps list)")
	f.StringArrayVar(&owners, "owner", nil, "an owner's email address (repeatable; default you)")
	f.StringVar(&id, "id", "", "the connector id (a-z, 0-9, '-', '_'); default made from the application's name")
	cmd.MarkFlagsMutuallyExclusive("app-new", "app")
	cmd.MarkFlagsOneRequired("app-new", "app")
	return cmd
}

func newConnectorsSetOwnersCmd() *cobra.Command {
	o := apiOptions{}
	var owners []string
	cmd := &cobra.Command{
		Use:   "set-owners ID --owner EMAIL [--owner EMAIL ...]",
		Short: "Replace a connector's owners (each must hold Connector Administrator or Super Administrator)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			resp, err := o.connectorsClient().SetOwners(cmd.Context(), connect.NewRequest(&catalogv1.SetOwnersRequest{ConnectorId: args[0], OwnerEmails: owners}))
			if err != nil {
				return callError("set the owners of "+args[0], o.server, err)
			}
			if o.json {
				return writeJSONLine(cmd.OutOrStdout(), resp.Msg)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "connector %s: owners %s\n", args[0], strings.Join(ownerList(resp.Msg.GetConnector()), ", "))
			return nil
		},
	}
	o.flags(cmd)
	cmd.Flags().StringArrayVar(&owners, "owner", nil, "an owner's email address (repeatable; required)")
	_ = cmd.MarkFlagRequired("owner")
	return cmd
}

func newConnectorsSetSettingsCmd() *cobra.Command {
	o := apiOptions{}
	var domain string
	var tokenStdin, customRoles bool
	var share float64
	var interval time.Duration
	cmd := &cobra.Command{
		Use:   "set-settings ID [--domain D] [--token-stdin] [--sync-custom-roles] [--rate-limit-share F] [--sync-interval D]",
		Short: "Set a connector's Okta domain, API token and options (takes being an owner or a Super Administrator)",
		Long: `Changes only the settings given. The API token is read from standard input
(--token-stdin), never from a flag, which shell history and ps would show; it is
checked against Okta before it is stored, and the answer says why when Okta
refuses it (the connector's status then becomes "error" with that reason).
Once stored it is never shown again: 'connectors get' says only "set".

  accessbus connectors set-settings acme --domain acme.okta.com --token-stdin < token.txt`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f := cmd.Flags()
			r := &catalogv1.SetSettingsRequest{ConnectorId: args[0]}
			if f.Changed("domain") {
				r.OktaDomain = proto.String(domain)
			}
			if tokenStdin {
				tok, err := readToken(cmd.InOrStdin())
				if err != nil {
					return err
				}
				r.ApiToken = proto.String(tok)
			}
			if f.Changed("sync-custom-roles") {
				r.SyncCustomRoles = proto.Bool(customRoles)
			}
			if f.Changed("rate-limit-share") {
				r.RateLimitShare = proto.Float64(share)
			}
			if f.Changed("sync-interval") {
				r.SyncInterval = durationpb.New(interval)
			}
			if r.OktaDomain == nil && r.ApiToken == nil && r.SyncCustomRoles == nil && r.RateLimitShare == nil && r.SyncInterval == nil {
				return errors.New("nothing to change: give --domain, --token-stdin, --sync-custom-roles, --rate-limit-share or --sync-interval")
			}
			resp, err := o.connectorsClient().SetSettings(cmd.Context(), connect.NewRequest(r))
			if err != nil {
				return callError("set the settings of "+args[0], o.server, err)
			}
			out := cmd.OutOrStdout()
			if o.json {
				return writeJSONLine(out, resp.Msg)
			}
			c := resp.Msg.GetConnector()
			if ch := resp.Msg.GetChangedFields(); len(ch) > 0 {
				fmt.Fprintf(out, "connector %s: changed %s\n", c.GetId(), strings.Join(ch, ", "))
			} else {
				fmt.Fprintf(out, "connector %s: nothing changed\n", c.GetId())
			}
			if caps := resp.Msg.GetCheckedCapabilities(); caps != nil {
				fmt.Fprintf(out, "token      accepted by Okta: %s\n", capabilityLine(caps))
			}
			fmt.Fprintf(out, "status     %s\n", statusLine(c))
			if r.ApiToken != nil {
				fmt.Fprintf(out, "watch it:  accessbus connectors get %s   (and its sync log: accessbus connectors logs %s)\n", c.GetId(), c.GetId())
			}
			return nil
		},
	}
	o.flags(cmd)
	f := cmd.Flags()
	f.StringVar(&domain, "domain", "", "the Okta org's domain, such as acme.okta.com (or https://acme.okta.com)")
	f.BoolVar(&tokenStdin, "token-stdin", false, "read the Okta API token from standard input")
	f.BoolVar(&customRoles, "sync-custom-roles", false, "sync custom admin roles, resource sets and bindings (--sync-custom-roles=false turns it off)")
	f.Float64Var(&share, "rate-limit-share", 0, "the share of each Okta rate-limit bucket the connector may use, in (0, 1]; 0 is the default (0.5)")
	f.DurationVar(&interval, "sync-interval", 0, "time between scheduled full syncs, at least 1m; 0 is the default (1h)")
	return cmd
}

// readToken reads the token from r: its first non-empty content, trimmed.
func readToken(r io.Reader) (string, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxTokenInput))
	if err != nil {
		return "", fmt.Errorf("read the token from standard input: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", errors.New("--token-stdin: standard input is empty: pipe the token in, such as < token.txt")
	}
	return tok, nil
}

func newConnectorsListCmd() *cobra.Command {
	o := apiOptions{}
	var mine bool
	var status string
	cmd := &cobra.Command{
		Use:   "list [--mine] [--status S]",
		Short: "List the connectors, optionally only yours and in one status",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := parseConnectorStatus(status)
			if err != nil {
				return err
			}
			resp, err := o.connectorsClient().ListConnectors(cmd.Context(), connect.NewRequest(&catalogv1.ListConnectorsRequest{Mine: mine, Status: st}))
			if err != nil {
				return callError("list the connectors", o.server, err)
			}
			out := cmd.OutOrStdout()
			if o.json {
				for _, c := range resp.Msg.GetConnectors() {
					if err := writeJSONLine(out, c); err != nil {
						return err
					}
				}
				return nil
			}
			names := o.applicationNames(cmd.Context())
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tAPPLICATION\tOKTA DOMAIN\tSTATUS\tTOKEN\tOWNERS\tREASON")
			for _, c := range resp.Msg.GetConnectors() {
				app := c.GetApplicationId()
				if n := names[app]; n != "" {
					app = n
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.GetId(), orDash(app), orDash(c.GetOktaDomain()), statusWords(c.GetStatus()),
					tokenWord(c), orDash(strings.Join(ownerList(c), ",")), c.GetStatusReason())
			}
			return tw.Flush()
		},
	}
	o.flags(cmd)
	cmd.Flags().BoolVar(&mine, "mine", false, "only the connectors you own")
	cmd.Flags().StringVar(&status, "status", "", "only connectors in this status: not-connected, syncing, connected or error")
	return cmd
}

// applicationNames maps application ids to names, for display; empty when
// the catalog cannot be read (the ids are shown then).
func (o *apiOptions) applicationNames(ctx context.Context) map[string]string {
	out := map[string]string{}
	resp, err := o.appsClient().ListApplications(ctx, connect.NewRequest(&catalogv1.ListApplicationsRequest{}))
	if err != nil {
		return out
	}
	for _, a := range resp.Msg.GetApplications() {
		out[a.GetId()] = a.GetName()
	}
	return out
}

func newConnectorsGetCmd() *cobra.Command {
	o := apiOptions{}
	cmd := &cobra.Command{
		Use:   "get ID",
		Short: "Show a connector: status, owners, settings, capabilities and latest runs",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			resp, err := o.connectorsClient().GetConnector(ctx, connect.NewRequest(&catalogv1.GetConnectorRequest{ConnectorId: args[0]}))
			if err != nil {
				return callError("connector "+args[0], o.server, err)
			}
			out := cmd.OutOrStdout()
			if o.json {
				return writeJSONLine(out, resp.Msg)
			}
			c, a := resp.Msg.GetConnector(), resp.Msg.GetApplication()
			fmt.Fprintf(out, "connector     %s\n", c.GetId())
			if a != nil {
				fmt.Fprintf(out, "application   %s (%s)\n", a.GetName(), a.GetId())
			} else {
				fmt.Fprintf(out, "application   %s\n", orDash(c.GetApplicationId()))
			}
			fmt.Fprintf(out, "okta domain   %s\n", orWord(c.GetOktaDomain(), "not set"))
			fmt.Fprintf(out, "status        %s\n", statusLine(c))
			token := tokenWord(c)
			if c.GetTokenSet() {
				token += fmt.Sprintf(" (version %d)", c.GetSecretVersion())
			}
			fmt.Fprintf(out, "api token     %s\n", token)
			fmt.Fprintf(out, "owners        %s\n", orDash(strings.Join(ownerList(c), ", ")))
			fmt.Fprintf(out, "options       %s\n", optionsLine(c.GetOptions()))
			if caps := c.GetCapabilities(); caps != nil {
				fmt.Fprintf(out, "capabilities  %s\n", capabilityLine(caps))
			} else {
				fmt.Fprintln(out, "capabilities  not known until a sync completes")
			}
			fmt.Fprintf(out, "created       %s by %s\n", c.GetCreatedAt().AsTime().Local().Format(time.DateTime), orDash(c.GetCreatedBy()))
			runs, err := o.syncClient().ListRuns(ctx, connect.NewRequest(&syncv1.ListRunsRequest{ConnectorId: c.GetId(), Limit: 3}))
			switch {
			case err != nil:
				fmt.Fprintf(out, "latest runs   not available: %v\n", err)
			case len(runs.Msg.GetRuns()) == 0:
				fmt.Fprintln(out, "latest runs   none yet")
			default:
				fmt.Fprintln(out, "latest runs:")
				for _, r := range runs.Msg.GetRuns() {
					printRun(out, r, false)
				}
				fmt.Fprintf(out, "the last run's log: accessbus connectors logs %s\n", c.GetId())
			}
			return nil
		},
	}
	o.flags(cmd)
	return cmd
}

func newConnectorsLogsCmd() *cobra.Command {
	o := apiOptions{}
	var runID string
	cmd := &cobra.Command{
		Use:   "logs ID [--run RUN]",
		Short: "Show the log of a connector's last sync run (or of --run)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			resp, err := o.syncClient().GetRun(cmd.Context(), connect.NewRequest(&syncv1.GetRunRequest{ConnectorId: args[0], RunId: runID}))
			if connect.CodeOf(err) == connect.CodeNotFound && runID == "" && strings.Contains(err.Error(), "not synced yet") {
				return fmt.Errorf("connector %s has not synced yet: its first sync starts once an owner sets its domain and token (accessbus connectors get %s)", args[0], args[0])
			}
			if err != nil {
				return callError("the sync log of "+args[0], o.server, err)
			}
			if o.json {
				return writeJSONLine(cmd.OutOrStdout(), resp.Msg.GetRun())
			}
			printRun(cmd.OutOrStdout(), resp.Msg.GetRun(), true)
			return nil
		},
	}
	o.flags(cmd)
	cmd.Flags().StringVar(&runID, "run", "", "this run instead of the last (accessbus connectors get ID lists the latest)")
	return cmd
}

// ---- words

// statusWords names a status as people say it: "not connected".
func statusWords(s eventsv1.ConnectorStatus) string {
	return strings.ReplaceAll(lowerName(s.String(), "CONNECTOR_STATUS_"), "_", " ")
}

// parseConnectorStatus reads --status: not-connected, not_connected or
// "not connected", syncing, connected, error; "" is every status.
func parseConnectorStatus(s string) (eventsv1.ConnectorStatus, error) {
	if s == "" {
		return eventsv1.ConnectorStatus_CONNECTOR_STATUS_UNSPECIFIED, nil
	}
	key := "CONNECTOR_STATUS_" + strings.ToUpper(strings.NewReplacer("-", "_", " ", "_").Replace(strings.TrimSpace(s)))
	v, ok := eventsv1.ConnectorStatus_value[key]
	if !ok || v == 0 {
		return 0, fmt.Errorf("--status %q: want not-connected, syncing, connected or error", s)
	}
	return eventsv1.ConnectorStatus(v), nil
}

func statusLine(c *eventsv1.Connector) string {
	s := statusWords(c.GetStatus())
	if c.GetStatusReason() != "" {
		s += ": " + c.GetStatusReason()
	}
	return s
}

func tokenWord(c *eventsv1.Connector) string {
	if c.GetTokenSet() {
		return "set"
	}
	return "not set"
}

func ownerList(c *eventsv1.Connector) []string {
	var out []string
	for _, o := range c.GetOwners() {
		out = append(out, o.GetEmail())
	}
	return out
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func capabilityLine(c *eventsv1.Capabilities) string {
	s := fmt.Sprintf("review groups %s, provision groups %s, review apps %s, provision apps %s, review roles %s",
		yesNo(c.GetReviewGroupMembership()), yesNo(c.GetProvisionGroupMembership()), yesNo(c.GetReviewAppAssignment()),
		yesNo(c.GetProvisionAppAssignment()), yesNo(c.GetReviewRoles()))
	if rs := c.GetAdminRoleTypes(); len(rs) > 0 {
		s += " (admin roles: " + strings.Join(rs, ", ") + ")"
	}
	return s
}

func optionsLine(o *eventsv1.ConnectorOptions) string {
	share := "default"
	if v := o.GetRateLimitShare(); v > 0 {
		share = fmt.Sprint(v)
	}
	interval := "default"
	if d := o.GetSyncInterval().AsDuration(); d > 0 {
		interval = d.String()
	}
	return fmt.Sprintf("sync custom roles %s, rate-limit share %s, sync interval %s", yesNo(o.GetSyncCustomRoles()), share, interval)
}

func orDash(s string) string { return orWord(s, "-") }

func orWord(s, word string) string {
	if s == "" {
		return word
	}
	return s
}
