package main

import (
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	catalogv1 "github.com/accessbus/accessbus/libs/gen/accessbus/catalog/v1"
	"github.com/accessbus/accessbus/libs/gen/accessbus/catalog/v1/catalogv1connect"
	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
)

func (o *apiOptions) appsClient() catalogv1connect.CatalogServiceClient {
	return catalogv1connect.NewCatalogServiceClient(o.httpClient(), o.base(), apiKeyOption(o.dataDir))
}

func newAppsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "apps",
		Short: "The catalog's applications: discovered in the synced Okta orgs, or created by hand",
		Long: `Talks to the CatalogService of a running accessbus (--server) with your API key
(ACCESSBUS_API_KEY, else accessbus dev's <data-dir>/admin-api-key).

Every app of a synced Okta org is an application of the catalog, unmanaged until a
connector is added to it (accessbus connectors add --app ID) or it is marked
managed; "SCIM" marks the ones Okta provisions (a PUSH_* or SCIM provisioning feature).
USERS counts the users assigned to a discovered application, directly or through
a group, and GROUPS its assigned groups, as the connector's sync last saw them.`,
	}
	cmd.AddCommand(newAppsListCmd(), newAppsGetCmd(), newAppsCreateCmd(), newAppsManageCmd())
	return cmd
}

func newAppsListCmd() *cobra.Command {
	o := apiOptions{}
	var r catalogv1.ListApplicationsRequest
	cmd := &cobra.Command{
		Use:   "list [--managed | --unmanaged] [--scim]",
		Short: "List the applications, filtered",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			resp, err := o.appsClient().ListApplications(cmd.Context(), connect.NewRequest(&catalogv1.ListApplicationsRequest{
				Managed: r.GetManaged(), Unmanaged: r.GetUnmanaged(), ScimProvisioned: r.GetScimProvisioned()}))
			if err != nil {
				return callError("list the applications", o.server, err)
			}
			out := cmd.OutOrStdout()
			if o.json {
				for _, a := range resp.Msg.GetApplications() {
					if err := writeJSONLine(out, a); err != nil {
						return err
					}
				}
				return nil
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tMANAGED\tSCIM\tSIGN-ON\tSTATUS\tUSERS\tGROUPS\tSOURCE\tFEATURES")
			for _, a := range resp.Msg.GetApplications() {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.GetId(), a.GetName(), yesNo(a.GetManaged()), yesNo(a.GetScimProvisioned()),
					orDash(lowerName(a.GetSignOnMode().String(), "SIGN_ON_MODE_")), orDash(lowerName(a.GetStatus().String(), "STATUS_")),
					assignmentCount(a, a.GetUserAssignmentCount()), assignmentCount(a, a.GetGroupAssignmentCount()),
					appSource(a), orDash(strings.Join(a.GetFeatures(), ",")))
			}
			return tw.Flush()
		},
	}
	o.flags(cmd)
	f := cmd.Flags()
	f.BoolVar(&r.Managed, "managed", false, "only managed applications")
	f.BoolVar(&r.Unmanaged, "unmanaged", false, "only unmanaged (discovered, not yet managed) applications")
	f.BoolVar(&r.ScimProvisioned, "scim", false, "only applications Okta provisions over SCIM")
	cmd.MarkFlagsMutuallyExclusive("managed", "unmanaged")
	return cmd
}

// assignmentCount shows one of an application's assignment counts: "-"
// for an application created by hand, which no Okta app assigns.
func assignmentCount(a *eventsv1.Application, n int64) string {
	if a.GetSourceConnectorId() == "" {
		return "-"
	}
	return strconv.FormatInt(n, 10)
}

func newAppsGetCmd() *cobra.Command {
	o := apiOptions{}
	cmd := &cobra.Command{
		Use:   "get APP_ID",
		Short: "Show an application: where it comes from, its sign-on, provisioning features and assignment counts",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			resp, err := o.appsClient().GetApplication(cmd.Context(), connect.NewRequest(&catalogv1.GetApplicationRequest{ApplicationId: args[0]}))
			if err != nil {
				return callError("application "+args[0], o.server, err)
			}
			out := cmd.OutOrStdout()
			if o.json {
				return writeJSONLine(out, resp.Msg.GetApplication())
			}
			a := resp.Msg.GetApplication()
			fmt.Fprintf(out, "application   %s\n", a.GetId())
			fmt.Fprintf(out, "name          %s\n", a.GetName())
			fmt.Fprintf(out, "managed       %s\n", yesNo(a.GetManaged()))
			fmt.Fprintf(out, "source        %s\n", appSource(a))
			if a.GetSourceConnectorId() == "" {
				return nil // created by hand: nothing from Okta to show
			}
			fmt.Fprintf(out, "okta status   %s\n", orDash(lowerName(a.GetStatus().String(), "STATUS_")))
			fmt.Fprintf(out, "sign-on       %s\n", orDash(lowerName(a.GetSignOnMode().String(), "SIGN_ON_MODE_")))
			fmt.Fprintf(out, "scim          %s\n", yesNo(a.GetScimProvisioned()))
			fmt.Fprintf(out, "features      %s\n", orWord(strings.Join(a.GetFeatures(), ", "), "none"))
			fmt.Fprintf(out, "assigned      %d users (directly or through groups), %d groups\n", a.GetUserAssignmentCount(), a.GetGroupAssignmentCount())
			return nil
		},
	}
	o.flags(cmd)
	return cmd
}

// appSource says where an application comes from.
func appSource(a *eventsv1.Application) string {
	if a.GetSourceConnectorId() == "" {
		return "created"
	}
	return a.GetSourceConnectorId() + "/" + a.GetOktaAppId()
}

func newAppsCreateCmd() *cobra.Command {
	o := apiOptions{}
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a managed application (takes Connector Administrator or Super Administrator)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			resp, err := o.appsClient().CreateApplication(cmd.Context(), connect.NewRequest(&catalogv1.CreateApplicationRequest{Name: args[0]}))
			if err != nil {
				return callError("create the application", o.server, err)
			}
			if o.json {
				return writeJSONLine(cmd.OutOrStdout(), resp.Msg.GetApplication())
			}
			a := resp.Msg.GetApplication()
			fmt.Fprintf(cmd.OutOrStdout(), "application %q created: %s\n", a.GetName(), a.GetId())
			return nil
		},
	}
	o.flags(cmd)
	return cmd
}

func newAppsManageCmd() *cobra.Command {
	o := apiOptions{}
	cmd := &cobra.Command{
		Use:   "manage APP_ID",
		Short: "Mark a discovered application managed (takes Connector Administrator or Super Administrator)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			resp, err := o.appsClient().MarkManaged(cmd.Context(), connect.NewRequest(&catalogv1.MarkManagedRequest{ApplicationId: args[0]}))
			if err != nil {
				return callError("mark "+args[0]+" managed", o.server, err)
			}
			if o.json {
				return writeJSONLine(cmd.OutOrStdout(), resp.Msg.GetApplication())
			}
			fmt.Fprintf(cmd.OutOrStdout(), "application %q (%s) is managed\n", resp.Msg.GetApplication().GetName(), args[0])
			return nil
		},
	}
	o.flags(cmd)
	return cmd
}
