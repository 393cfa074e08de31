package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	syncv1 "github.com/accessbus/accessbus/libs/gen/accessbus/sync/v1"
	"github.com/accessbus/accessbus/libs/gen/accessbus/sync/v1/syncv1connect"
)

// syncOptions are the flags every `accessbus sync` command shares.
type syncOptions struct {
	server, connector, dataDir string
	json                       bool
}

func (o *syncOptions) flags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.server, "server", defaultServer, "base URL of the accessbus HTTP API")
	f.StringVar(&o.connector, "connector", "", "connector id (required)")
	dataDirFlag(cmd, &o.dataDir)
	f.BoolVar(&o.json, "json", false, "print the API's answer as JSON")
	_ = cmd.MarkFlagRequired("connector")
}

// client calls the SyncService with the caller's API key.
func (o *syncOptions) client() syncv1connect.SyncServiceClient {
	return syncv1connect.NewSyncServiceClient(&http.Client{}, strings.TrimRight(o.server, "/"), apiKeyOption(o.dataDir))
}

func newSyncCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sync",
		Short: "Start sync runs and see how they went",
		Long: `Talks to the SyncService of a running accessbus (--server, default the local
accessbus dev) with your API key (ACCESSBUS_API_KEY, else accessbus dev's
<data-dir>/admin-api-key). Anyone with a key reads; starting a sync and
confirming removals take an owner of the connector (Connector Administrator)
or a Super Administrator. A run reads the connector's Okta org and publishes what changed
on access.<connector>.>; runs also start on a schedule (default every hour).`,
	}
	cmd.AddCommand(newSyncRunCmd(), newSyncStatusCmd(), newSyncRunsCmd(), newSyncConfirmCmd())
	return cmd
}

func newSyncRunCmd() *cobra.Command {
	o := syncOptions{}
	var reason string
	var wait bool
	cmd := &cobra.Command{
		Use:   "run --connector C",
		Short: "Request a full sync of a connector now",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c := o.client()
			resp, err := c.TriggerSync(cmd.Context(), connect.NewRequest(&syncv1.TriggerSyncRequest{ConnectorId: o.connector, Reason: reason}))
			if err != nil {
				return callError("request a sync of "+o.connector, o.server, err)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "sync of %s requested (request %s)\n", o.connector, resp.Msg.GetRequestId())
			if !wait {
				return nil
			}
			run, err := waitRun(cmd.Context(), c, o.connector, resp.Msg.GetRequestId())
			if err != nil {
				return err
			}
			printRun(out, run, false)
			if run.GetState() == syncv1.RunState_RUN_STATE_FAILED {
				return fmt.Errorf("run %s failed: %s", run.GetRunId(), run.GetMessage())
			}
			return nil
		},
	}
	o.flags(cmd)
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the run's log")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait for the run to finish and print it")
	return cmd
}

// waitRun polls the connector's runs until the run of requestID finishes.
func waitRun(ctx context.Context, c syncv1connect.SyncServiceClient, connector, requestID string) (*syncv1.Run, error) {
	for {
		resp, err := c.ListRuns(ctx, connect.NewRequest(&syncv1.ListRunsRequest{ConnectorId: connector, Limit: 20}))
		if err != nil {
			return nil, fmt.Errorf("wait for the run: %w", err)
		}
		for _, r := range resp.Msg.GetRuns() {
			if r.GetRequestId() == requestID && r.GetState() != syncv1.RunState_RUN_STATE_RUNNING {
				full, err := c.GetRun(ctx, connect.NewRequest(&syncv1.GetRunRequest{ConnectorId: connector, RunId: r.GetRunId()}))
				if err != nil {
					return nil, fmt.Errorf("read run %s: %w", r.GetRunId(), err)
				}
				return full.Msg.GetRun(), nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func newSyncStatusCmd() *cobra.Command {
	o := syncOptions{}
	cmd := &cobra.Command{
		Use:   "status --connector C",
		Short: "Show a connector's status, capabilities and latest run",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			resp, err := o.client().GetStatus(cmd.Context(), connect.NewRequest(&syncv1.GetStatusRequest{ConnectorId: o.connector}))
			if err != nil {
				return callError("status of "+o.connector, o.server, err)
			}
			out := cmd.OutOrStdout()
			if o.json {
				return writeJSONLine(out, resp.Msg)
			}
			c := resp.Msg.GetConnector()
			domain := c.GetOktaDomain()
			if domain == "" {
				domain = "Okta domain not set"
			}
			fmt.Fprintf(out, "connector   %s (%s)\n", c.GetId(), domain)
			status := lowerName(c.GetStatus().String(), "CONNECTOR_STATUS_")
			if c.GetStatusReason() != "" {
				status += ": " + c.GetStatusReason()
			}
			fmt.Fprintf(out, "status      %s\n", status)
			fmt.Fprintf(out, "token       %s\n", map[bool]string{true: "set", false: "not set"}[c.GetTokenSet()])
			fmt.Fprintf(out, "syncing now %v\n", resp.Msg.GetSyncingNow())
			if caps := c.GetCapabilities(); caps != nil {
				fmt.Fprintf(out, "capabilities review groups %v, provision groups %v, review apps %v, provision apps %v, review roles %v (admin roles: %s)\n",
					caps.GetReviewGroupMembership(), caps.GetProvisionGroupMembership(), caps.GetReviewAppAssignment(),
					caps.GetProvisionAppAssignment(), caps.GetReviewRoles(), strings.Join(caps.GetAdminRoleTypes(), ", "))
			}
			if r := resp.Msg.GetLatestRun(); r != nil {
				fmt.Fprintln(out, "latest run:")
				printRun(out, r, false)
			} else {
				fmt.Fprintln(out, "latest run  none yet")
			}
			return nil
		},
	}
	o.flags(cmd)
	return cmd
}

func newSyncRunsCmd() *cobra.Command {
	o := syncOptions{}
	var limit int
	var runID string
	cmd := &cobra.Command{
		Use:   "runs --connector C [--run ID]",
		Short: "List a connector's latest runs, or show one run with its log",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			if runID != "" {
				resp, err := o.client().GetRun(cmd.Context(), connect.NewRequest(&syncv1.GetRunRequest{ConnectorId: o.connector, RunId: runID}))
				if err != nil {
					return callError("run "+runID+" of "+o.connector, o.server, err)
				}
				if o.json {
					return writeJSONLine(out, resp.Msg.GetRun())
				}
				printRun(out, resp.Msg.GetRun(), true)
				return nil
			}
			resp, err := o.client().ListRuns(cmd.Context(), connect.NewRequest(&syncv1.ListRunsRequest{ConnectorId: o.connector, Limit: int32(limit)}))
			if err != nil {
				return callError("runs of "+o.connector, o.server, err)
			}
			if o.json {
				for _, r := range resp.Msg.GetRuns() {
					if err := writeJSONLine(out, r); err != nil {
						return err
					}
				}
				return nil
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "RUN\tSTATE\tSTARTED\tDURATION\tEVENTS\tAPI CALLS\tREQUESTED BY\tNOTE")
			for _, r := range resp.Msg.GetRuns() {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\n", r.GetRunId(), lowerName(r.GetState().String(), "RUN_STATE_"),
					r.GetStartedAt().AsTime().Local().Format(time.DateTime), r.GetDuration().AsDuration().Round(time.Millisecond),
					r.GetEventsPublished(), sum(r.GetApiCalls()), r.GetRequestedBy(), note(r))
			}
			return tw.Flush()
		},
	}
	o.flags(cmd)
	cmd.Flags().IntVar(&limit, "limit", 20, "how many runs, 1 to 100")
	cmd.Flags().StringVar(&runID, "run", "", "show this run with its log")
	return cmd
}

func newSyncConfirmCmd() *cobra.Command {
	o := syncOptions{}
	var runID, reason string
	cmd := &cobra.Command{
		Use:   "confirm-removals --connector C [--run ID]",
		Short: "Publish the removals a run held back because they exceeded the removal threshold",
		Long: `A full sync that would remove more than the connector's removal threshold of its
grants (default 20%) publishes its additions and holds the removals. Check them in
Okta; if they are right, confirm them: a new full sync then publishes them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			resp, err := o.client().ConfirmRemovals(cmd.Context(), connect.NewRequest(&syncv1.ConfirmRemovalsRequest{ConnectorId: o.connector, RunId: runID, Reason: reason}))
			if err != nil {
				return callError("confirm the removals of "+o.connector, o.server, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "confirmed %d held removals of run %s; full sync requested (request %s)\n",
				resp.Msg.GetRemovalsHeldCount(), resp.Msg.GetRunId(), resp.Msg.GetRequestId())
			return nil
		},
	}
	o.flags(cmd)
	cmd.Flags().StringVar(&runID, "run", "", "the run that held the removals (default the latest)")
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the run's log")
	return cmd
}

// printRun prints one run; withLog adds its log.
func printRun(w io.Writer, r *syncv1.Run, withLog bool) {
	fmt.Fprintf(w, "  run %s: %s, started %s, took %s, requested by %s\n", r.GetRunId(), lowerName(r.GetState().String(), "RUN_STATE_"),
		r.GetStartedAt().AsTime().Local().Format(time.DateTime), r.GetDuration().AsDuration().Round(time.Millisecond), r.GetRequestedBy())
	if r.GetState() == syncv1.RunState_RUN_STATE_FAILED {
		fmt.Fprintf(w, "  failed (%s): %s\n", lowerName(r.GetFailureReason().String(), "SYNC_FAILURE_REASON_"), r.GetMessage())
	}
	for _, c := range r.GetResources() {
		k := c.GetCounts()
		fmt.Fprintf(w, "  %-24s seen %d, added %d, updated %d, removed %d\n", lowerName(c.GetKind().String(), "RESOURCE_KIND_")+"s", k.GetSeen(), k.GetAdded(), k.GetUpdated(), k.GetRemoved())
	}
	for _, c := range r.GetGrants() {
		k := c.GetCounts()
		fmt.Fprintf(w, "  %-24s seen %d, added %d, updated %d, removed %d\n", lowerName(c.GetKind().String(), "GRANT_KIND_")+"s", k.GetSeen(), k.GetAdded(), k.GetUpdated(), k.GetRemoved())
	}
	if r.GetRemovalsHeld() {
		fmt.Fprintf(w, "  %d removals HELD: check them in Okta, then run `accessbus sync confirm-removals --connector %s --run %s`\n", r.GetRemovalsHeldCount(), r.GetConnectorId(), r.GetRunId())
	}
	var buckets []string
	for b, n := range r.GetApiCalls() {
		buckets = append(buckets, fmt.Sprintf("%s %d", b, n))
	}
	sort.Strings(buckets)
	fmt.Fprintf(w, "  Okta API calls %d (%s), 429s %d, events %d\n", sum(r.GetApiCalls()), strings.Join(buckets, ", "), r.GetHttp_429(), r.GetEventsPublished())
	for _, s := range r.GetSkipped() {
		fmt.Fprintf(w, "  skipped %s: %s\n", s.GetPart(), s.GetMessage())
	}
	if withLog {
		fmt.Fprintln(w, "  log:")
		for _, l := range r.GetLog() {
			var attrs []string
			for k, v := range l.GetAttrs() {
				attrs = append(attrs, k+"="+v)
			}
			sort.Strings(attrs)
			fmt.Fprintf(w, "    %s %-5s %s %s\n", l.GetTime().AsTime().Local().Format("15:04:05.000"), l.GetLevel(), l.GetMessage(), strings.Join(attrs, " "))
		}
	}
}

func note(r *syncv1.Run) string {
	switch {
	case r.GetState() == syncv1.RunState_RUN_STATE_FAILED:
		return r.GetMessage()
	case r.GetRemovalsHeld():
		return fmt.Sprintf("%d removals held", r.GetRemovalsHeldCount())
	case len(r.GetSkipped()) > 0:
		return fmt.Sprintf("%d parts skipped", len(r.GetSkipped()))
	}
	return ""
}

func sum(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}
