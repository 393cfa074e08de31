package main

import (
	"fmt"
	"strings"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	"github.com/accessbus/accessbus/libs/auth"
	catalogv1 "github.com/accessbus/accessbus/libs/gen/accessbus/catalog/v1"
	"github.com/accessbus/accessbus/libs/gen/accessbus/catalog/v1/catalogv1connect"
)

func (o *apiOptions) adminClient() catalogv1connect.AdminServiceClient {
	return catalogv1connect.NewAdminServiceClient(o.httpClient(), o.base(), apiKeyOption(o.dataDir))
}

func newAdminCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "admin",
		Short: "Who you are, platform roles and API keys",
		Long: `Talks to the AdminService of a running accessbus (--server) with your API key
(ACCESSBUS_API_KEY, else accessbus dev's <data-dir>/admin-api-key).

Platform roles: super_admin (Super Administrator: everything, including roles and
any connector) and connector_admin (Connector Administrator: adds connectors and
may own them). The first Super Administrator is created at the first start.`,
	}
	roles := &cobra.Command{Use: "roles", Short: "Assign and revoke platform roles (takes Super Administrator)"}
	roles.AddCommand(newAdminRoleCmd("assign"), newAdminRoleCmd("revoke"))
	keys := &cobra.Command{Use: "keys", Short: "Create API keys"}
	keys.AddCommand(newAdminKeysCreateCmd())
	cmd.AddCommand(newAdminWhoAmICmd(), roles, keys)
	return cmd
}

func newAdminWhoAmICmd() *cobra.Command {
	o := apiOptions{}
	cmd := &cobra.Command{
		Use:   "whoami",
		Short: "Show the identity and roles of your API key",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			resp, err := o.adminClient().WhoAmI(cmd.Context(), connect.NewRequest(&catalogv1.WhoAmIRequest{}))
			if err != nil {
				return callError("who am I", o.server, err)
			}
			out := cmd.OutOrStdout()
			if o.json {
				return writeJSONLine(out, resp.Msg)
			}
			m := resp.Msg
			fmt.Fprintf(out, "identity  %s\n", m.GetIdentityId())
			fmt.Fprintf(out, "email     %s\n", orDash(m.GetEmail()))
			if m.GetDisplayName() != "" {
				fmt.Fprintf(out, "name      %s\n", m.GetDisplayName())
			}
			fmt.Fprintf(out, "roles     %s\n", orWord(roleWords(m.GetRoles()), "none"))
			return nil
		},
	}
	o.flags(cmd)
	return cmd
}

func newAdminRoleCmd(verb string) *cobra.Command {
	o := apiOptions{}
	var email, role string
	cmd := &cobra.Command{
		Use:   verb + " --email E --role R",
		Short: map[string]string{"assign": "Give a person a platform role", "revoke": "Take a platform role from a person"}[verb],
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := auth.ParseRole(role)
			if err != nil {
				return fmt.Errorf("--role: %w", err)
			}
			pr := catalogv1.Role_ROLE_CONNECTOR_ADMIN
			if r == auth.SuperAdmin {
				pr = catalogv1.Role_ROLE_SUPER_ADMIN
			}
			c := o.adminClient()
			var id string
			var roles []catalogv1.Role
			if verb == "assign" {
				resp, err := c.AssignRole(cmd.Context(), connect.NewRequest(&catalogv1.AssignRoleRequest{Email: email, Role: pr}))
				if err != nil {
					return callError("assign "+string(r)+" to "+email, o.server, err)
				}
				id, roles = resp.Msg.GetIdentityId(), resp.Msg.GetRoles()
			} else {
				resp, err := c.RevokeRole(cmd.Context(), connect.NewRequest(&catalogv1.RevokeRoleRequest{Email: email, Role: pr}))
				if err != nil {
					return callError("revoke "+string(r)+" from "+email, o.server, err)
				}
				id, roles = resp.Msg.GetIdentityId(), resp.Msg.GetRoles()
			}
			if o.json {
				return writeJSONLine(cmd.OutOrStdout(), &catalogv1.AssignRoleResponse{IdentityId: id, Roles: roles})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s (%s): roles %s\n", email, id, orWord(roleWords(roles), "none"))
			return nil
		},
	}
	o.flags(cmd)
	cmd.Flags().StringVar(&email, "email", "", "the person's email address (required)")
	cmd.Flags().StringVar(&role, "role", "", "super_admin or connector_admin (required)")
	_ = cmd.MarkFlagRequired("email")
	_ = cmd.MarkFlagRequired("role")
	return cmd
}

func newAdminKeysCreateCmd() *cobra.Command {
	o := apiOptions{}
	var name, email string
	cmd := &cobra.Command{
		Use:   "create [--name N] [--email E]",
		Short: "Create an API key for you (or, as a Super Administrator, for --email); it is shown once",
		Long: `Creates an API key and prints it alone on standard output, once: accessbus stores
only its hash. Keep it secret; give it to the CLI as ACCESSBUS_API_KEY.

  export ACCESSBUS_API_KEY=$(accessbus admin keys create --name laptop)`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			resp, err := o.adminClient().CreateAPIKey(cmd.Context(), connect.NewRequest(&catalogv1.CreateAPIKeyRequest{Name: name, Email: email}))
			if err != nil {
				return callError("create an API key", o.server, err)
			}
			if o.json {
				return writeJSONLine(cmd.OutOrStdout(), resp.Msg)
			}
			fmt.Fprintln(cmd.OutOrStdout(), resp.Msg.GetApiKey())
			fmt.Fprintf(cmd.ErrOrStderr(), "API key for %s created; it is shown only this once\n", resp.Msg.GetIdentityId())
			return nil
		},
	}
	o.flags(cmd)
	cmd.Flags().StringVar(&name, "name", "", "a name for the key, such as laptop or ci")
	cmd.Flags().StringVar(&email, "email", "", "create the key for this person (takes Super Administrator)")
	return cmd
}

// roleWords names roles as the CLI takes them.
func roleWords(rs []catalogv1.Role) string {
	var out []string
	for _, r := range rs {
		out = append(out, lowerName(r.String(), "ROLE_"))
	}
	return strings.Join(out, ", ")
}
