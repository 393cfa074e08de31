package main

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	accessv1 "github.com/accessbus/accessbus/libs/gen/accessbus/access/v1"
	"github.com/accessbus/accessbus/libs/gen/accessbus/access/v1/accessv1connect"
	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
)

// defaultServer is the HTTP listener of `accessbus dev`.
const defaultServer = "http://127.0.0.1:8080"

// accessListOptions are the flags of `accessbus access list`.
type accessListOptions struct {
	server, connector, dataDir string
	user, group, app, role     string
	kind                       string
	pageSize                   int32
	json                       bool
}

// accessExportOptions are the flags of `accessbus access export`.
type accessExportOptions struct {
	server, connector, format, out, dataDir string
}

func newAccessCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "access",
		Short: "Who has what in a connector's Okta org, now (the AccessService API)",
		Long: `Reads the sync service's current state of a connector through the
AccessService Connect API of a running accessbus (--server, default the
'accessbus dev' listener) with your API key (ACCESSBUS_API_KEY, else accessbus
dev's <data-dir>/admin-api-key); any identity with a key may read.
docs/access.md describes the API.`,
	}
	cmd.AddCommand(newAccessListCmd(), newAccessExportCmd())
	return cmd
}

func newAccessListCmd() *cobra.Command {
	o := accessListOptions{}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List a connector's grants: a user's access, or a group's, an app's or a role's members",
		Long: `Lists the grants of a connector, all of them or those of one of:
  --user U    the user's access: memberships, app assignments (direct and
              through groups), admin roles
  --group G   the group's members and what the group holds (apps, roles)
  --app A     the app's assignees (users and groups)
  --role R    who holds a role: a standard role type (SUPER_ADMIN) or a
              custom role id (cr0...)
--kind narrows to one grant kind. Prints a table, or with --json one grant
a line (the AccessGrant message as protobuf JSON).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return accessList(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.server, "server", defaultServer, "base URL of the accessbus HTTP API")
	dataDirFlag(cmd, &o.dataDir)
	f.StringVar(&o.connector, "connector", "", "connector id (required)")
	f.StringVar(&o.user, "user", "", "a user's access (Okta user id)")
	f.StringVar(&o.group, "group", "", "a group's members and grants (Okta group id)")
	f.StringVar(&o.app, "app", "", "an app's assignees (Okta app id)")
	f.StringVar(&o.role, "role", "", "a role's holders (role type or custom role id)")
	f.StringVar(&o.kind, "kind", "", "only grants of this kind: group_membership, app_assignment, role_assignment or resource_set_binding")
	f.Int32Var(&o.pageSize, "page-size", 500, "grants fetched per request (at most 1000)")
	f.BoolVar(&o.json, "json", false, "print JSON lines instead of a table")
	_ = cmd.MarkFlagRequired("connector")
	cmd.MarkFlagsMutuallyExclusive("user", "group", "app", "role")
	return cmd
}

func newAccessExportCmd() *cobra.Command {
	o := accessExportOptions{}
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Export a consistent snapshot of a connector's resources and grants (json or csv)",
		Long: `Exports a consistent snapshot of a connector's state: it names the ACCESS
stream sequence it reflects (every change up to it is in the snapshot, none
after), so a consumer can load it and follow the stream from the next one.

--format json writes one document: {"header": {...}, "resources": [...],
"grants": [...]}, each item the API's message as protobuf JSON.
--format csv writes one row per grant, for access reviews: connector,
access_sequence, grant_key, kind, principal_type, principal_id,
principal_name, resource_type, resource_id, resource_name, role, scope,
via_group_ids, status. Names come from the snapshot's resources (a user's
login, a group's name, an app's label).

Without --out the export goes to standard output; with it, to the file,
which appears only once the export is complete.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return accessExport(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.server, "server", defaultServer, "base URL of the accessbus HTTP API")
	dataDirFlag(cmd, &o.dataDir)
	f.StringVar(&o.connector, "connector", "", "connector id (required)")
	f.StringVar(&o.format, "format", "json", "json or csv")
	f.StringVar(&o.out, "out", "", "write to this file instead of standard output")
	_ = cmd.MarkFlagRequired("connector")
	return cmd
}

// accessClient calls the AccessService with the caller's API key.
func accessClient(server, dataDir string) accessv1connect.AccessServiceClient {
	return accessv1connect.NewAccessServiceClient(&http.Client{}, strings.TrimRight(server, "/"), apiKeyOption(dataDir))
}

// callError says where the failed call went and, when nothing answered,
// what to start; when the API key was missing or refused, how to give one.
func callError(what, server string, err error) error {
	switch connect.CodeOf(err) {
	case connect.CodeUnavailable:
		if !strings.Contains(err.Error(), "busy") {
			return fmt.Errorf("%s at %s (is accessbus dev running? else pass --server): %w", what, server, err)
		}
	case connect.CodeUnauthenticated:
		return fmt.Errorf("%s at %s: %w; give your API key in %s, or run the command with --data-dir set to the data dir of the accessbus dev "+
			"that wrote %s (a key is created with `accessbus admin keys create`)", what, server, err, envAPIKey, adminAPIKeyFile)
	}
	return fmt.Errorf("%s at %s: %w", what, server, err)
}

// grantKindFlag parses --kind.
func grantKindFlag(s string) (eventsv1.GrantKind, error) {
	if s == "" {
		return eventsv1.GrantKind_GRANT_KIND_UNSPECIFIED, nil
	}
	v, ok := eventsv1.GrantKind_value["GRANT_KIND_"+strings.ToUpper(s)]
	if !ok || v == 0 {
		return 0, fmt.Errorf("--kind %q: want group_membership, app_assignment, role_assignment or resource_set_binding", s)
	}
	return eventsv1.GrantKind(v), nil
}

func accessList(ctx context.Context, o accessListOptions, w io.Writer) error {
	kind, err := grantKindFlag(o.kind)
	if err != nil {
		return err
	}
	req := &accessv1.ListGrantsRequest{ConnectorId: o.connector, Kind: kind, PageSize: o.pageSize}
	switch {
	case o.user != "":
		req.Filter = &accessv1.ListGrantsRequest_UserId{UserId: o.user}
	case o.group != "":
		req.Filter = &accessv1.ListGrantsRequest_GroupId{GroupId: o.group}
	case o.app != "":
		req.Filter = &accessv1.ListGrantsRequest_AppId{AppId: o.app}
	case o.role != "":
		req.Filter = &accessv1.ListGrantsRequest_Role{Role: o.role}
	}
	client := accessClient(o.server, o.dataDir)
	var tw *tabwriter.Writer
	if !o.json {
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "PRINCIPAL\tKIND\tRESOURCE\tDETAIL")
	}
	n := 0
	for {
		resp, err := client.ListGrants(ctx, connect.NewRequest(req))
		if err != nil {
			return callError("list grants of connector "+o.connector, o.server, err)
		}
		for _, g := range resp.Msg.GetGrants() {
			n++
			if o.json {
				if err := writeJSONLine(w, g); err != nil {
					return err
				}
				continue
			}
			r := describeGrant(g.GetGrant())
			fmt.Fprintf(tw, "%s %s\t%s\t%s %s\t%s\n", r.principalType, r.principalID, r.kind, r.resourceType, r.resourceID, r.detail())
		}
		if resp.Msg.GetNextPageToken() == "" {
			break
		}
		req.PageToken = resp.Msg.GetNextPageToken()
	}
	if tw != nil {
		if n == 0 {
			fmt.Fprintln(tw, "(no grants)")
		}
		if err := tw.Flush(); err != nil {
			return fmt.Errorf("write grants: %w", err)
		}
	}
	return nil
}

func writeJSONLine(w io.Writer, m proto.Message) error {
	b, err := protojson.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode %s: %w", m.ProtoReflect().Descriptor().Name(), err)
	}
	if _, err := fmt.Fprintf(w, "%s\n", b); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// grantRow is one grant in the words of the table and the CSV.
type grantRow struct {
	kind, principalType, principalID, resourceType, resourceID string
	role, scope, viaGroups, status                             string
}

func (r grantRow) detail() string {
	var parts []string
	for _, p := range [][2]string{{"role", r.role}, {"scope", r.scope}, {"via", r.viaGroups}, {"status", r.status}} {
		if p[1] != "" {
			parts = append(parts, p[0]+"="+p[1])
		}
	}
	return strings.Join(parts, " ")
}

// lowerName is an enum value's name without its prefix, in lower case.
func lowerName(name, prefix string) string {
	s := strings.ToLower(strings.TrimPrefix(name, prefix))
	if s == "unspecified" {
		return ""
	}
	return s
}

func describeGrant(g *eventsv1.Grant) grantRow {
	r := grantRow{
		principalType: lowerName(g.GetPrincipal().GetType().String(), "PRINCIPAL_TYPE_"),
		principalID:   g.GetPrincipal().GetId(),
	}
	switch e := g.GetEntitlement().(type) {
	case *eventsv1.Grant_GroupMembership:
		r.kind, r.resourceType, r.resourceID = "group_membership", "group", e.GroupMembership.GetGroupId()
	case *eventsv1.Grant_AppAssignment:
		a := e.AppAssignment
		r.kind, r.resourceType, r.resourceID = "app_assignment", "app", a.GetAppId()
		r.scope = lowerName(a.GetScope().String(), "SCOPE_")
		r.viaGroups = strings.Join(a.GetViaGroupIds(), ",")
		r.status = a.GetStatus()
	case *eventsv1.Grant_RoleAssignment:
		a := e.RoleAssignment
		r.kind, r.role = "role_assignment", a.GetRoleType()
		r.resourceType, r.resourceID = "standard_role", a.GetRoleType()
		if a.GetCustomRoleId() != "" {
			r.resourceType, r.resourceID = "custom_role", a.GetCustomRoleId()
			r.role = "CUSTOM " + a.GetCustomRoleId() + " on " + a.GetResourceSetId()
		}
		r.scope = lowerName(a.GetAssignmentType().String(), "ASSIGNMENT_TYPE_")
		r.status = lowerName(a.GetStatus().String(), "STATUS_")
	case *eventsv1.Grant_ResourceSetBinding:
		b := e.ResourceSetBinding
		r.kind, r.resourceType, r.resourceID = "resource_set_binding", "resource_set", b.GetResourceSetId()
		r.role = b.GetRoleId()
	}
	return r
}

func accessExport(ctx context.Context, o accessExportOptions, stdout io.Writer) (err error) {
	var write func(*exportReader, io.Writer) error
	switch o.format {
	case "json":
		write = writeExportJSON
	case "csv":
		write = writeExportCSV
	default:
		return fmt.Errorf("--format %q: want json or csv", o.format)
	}
	stream, err := accessClient(o.server, o.dataDir).ExportSnapshot(ctx, connect.NewRequest(&accessv1.ExportSnapshotRequest{ConnectorId: o.connector}))
	if err != nil {
		return callError("export connector "+o.connector, o.server, err)
	}
	defer func() { _ = stream.Close() }()
	x := &exportReader{stream: stream, connector: o.connector, server: o.server}
	if o.out == "" {
		return write(x, stdout)
	}
	// A temporary file renamed at the end: a reader never sees half an export.
	f, err := os.CreateTemp(filepath.Dir(o.out), "."+filepath.Base(o.out)+".*")
	if err != nil {
		return fmt.Errorf("create %s: %w", o.out, err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if err := write(x, f); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", o.out, err)
	}
	if err := os.Rename(f.Name(), o.out); err != nil {
		return fmt.Errorf("write %s: %w", o.out, err)
	}
	return nil
}

// exportReader reads a snapshot stream in order: header, resources, grants.
type exportReader struct {
	stream            *connect.ServerStreamForClient[accessv1.ExportSnapshotResponse]
	connector, server string
	header            *accessv1.SnapshotHeader
}

// next returns the next message after the header; nil at the end.
func (x *exportReader) next() (*accessv1.ExportSnapshotResponse, error) {
	if !x.stream.Receive() {
		if err := x.stream.Err(); err != nil {
			return nil, callError("export connector "+x.connector, x.server, err)
		}
		if x.header == nil {
			return nil, fmt.Errorf("export connector %s at %s: the stream ended without a header", x.connector, x.server)
		}
		return nil, nil
	}
	msg := x.stream.Msg()
	if h := msg.GetHeader(); h != nil {
		if x.header != nil {
			return nil, fmt.Errorf("export connector %s: a second header", x.connector)
		}
		x.header = h
		return x.next()
	}
	if x.header == nil {
		return nil, fmt.Errorf("export connector %s: data before the header", x.connector)
	}
	return msg, nil
}

var exportJSON = protojson.MarshalOptions{}

func writeExportJSON(x *exportReader, w io.Writer) error {
	first, err := x.next()
	if err != nil {
		return err
	}
	hb, err := exportJSON.Marshal(x.header)
	if err != nil {
		return fmt.Errorf("encode header: %w", err)
	}
	bw := &errWriter{w: w}
	bw.printf(`{"header":%s,"resources":[`, hb)
	section, n := "resources", 0
	for msg := first; msg != nil; {
		var items []proto.Message
		switch c := msg.GetChunk().(type) {
		case *accessv1.ExportSnapshotResponse_Resources:
			for _, r := range c.Resources.GetResources() {
				items = append(items, r)
			}
		case *accessv1.ExportSnapshotResponse_Grants:
			if section == "resources" {
				bw.printf(`],"grants":[`)
				section, n = "grants", 0
			}
			for _, g := range c.Grants.GetGrants() {
				items = append(items, g)
			}
		}
		for _, it := range items {
			b, err := exportJSON.Marshal(it)
			if err != nil {
				return fmt.Errorf("encode %s: %w", section, err)
			}
			if n > 0 {
				bw.printf(",")
			}
			bw.printf("\n%s", b)
			n++
		}
		if msg, err = x.next(); err != nil {
			return err
		}
	}
	if section == "resources" {
		bw.printf(`],"grants":[`)
	}
	bw.printf("]}\n")
	return bw.err
}

// errWriter keeps the first write error.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err == nil {
		if _, err := fmt.Fprintf(e.w, format, args...); err != nil {
			e.err = fmt.Errorf("write export: %w", err)
		}
	}
}

// csvHeader is the CSV export's first row.
var csvHeader = []string{"connector", "access_sequence", "grant_key", "kind", "principal_type", "principal_id", "principal_name",
	"resource_type", "resource_id", "resource_name", "role", "scope", "via_group_ids", "status"}

func writeExportCSV(x *exportReader, w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(csvHeader); err != nil {
		return fmt.Errorf("write export: %w", err)
	}
	names := map[string]string{} // "<type>/<id>"
	for {
		msg, err := x.next()
		if err != nil {
			return err
		}
		if msg == nil {
			break
		}
		for _, r := range msg.GetResources().GetResources() {
			typ, name := resourceName(r.GetResource())
			names[typ+"/"+r.GetId()] = name
		}
		seq := fmt.Sprint(x.header.GetAccessSequence())
		for _, ag := range msg.GetGrants().GetGrants() {
			r := describeGrant(ag.GetGrant())
			row := []string{x.header.GetConnectorId(), seq, ag.GetGrant().GetKey(), r.kind, r.principalType, r.principalID,
				names[r.principalType+"/"+r.principalID], r.resourceType, r.resourceID, names[r.resourceType+"/"+r.resourceID],
				r.role, r.scope, r.viaGroups, r.status}
			if err := cw.Write(row); err != nil {
				return fmt.Errorf("write export: %w", err)
			}
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write export: %w", err)
	}
	return nil
}

// resourceName returns a resource's type (as describeGrant names it) and
// the name a person recognises it by.
func resourceName(r *eventsv1.Resource) (typ, name string) {
	switch x := r.GetResource().(type) {
	case *eventsv1.Resource_User:
		return "user", x.User.GetLogin()
	case *eventsv1.Resource_Group:
		return "group", x.Group.GetName()
	case *eventsv1.Resource_App:
		return "app", x.App.GetLabel()
	case *eventsv1.Resource_StandardRole:
		return "standard_role", x.StandardRole.GetLabel()
	case *eventsv1.Resource_CustomRole:
		return "custom_role", x.CustomRole.GetLabel()
	case *eventsv1.Resource_ResourceSet:
		return "resource_set", x.ResourceSet.GetLabel()
	}
	return "", ""
}
