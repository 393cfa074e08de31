package oktasim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// Tokens are the API tokens of the three admin users every generated org
// has, one per row of the capability table in shared/okta/FACTS.md.
type Tokens struct {
	// ReadOnlyAdmin belongs to a READ_ONLY_ADMIN.
	ReadOnlyAdmin string `json:"read_only_admin"`
	// AppGroupAdmin belongs to a READ_ONLY_ADMIN + APP_ADMIN + USER_ADMIN.
	AppGroupAdmin string `json:"app_group_admin"`
	// SuperAdmin belongs to a SUPER_ADMIN.
	SuperAdmin string `json:"super_admin"`
}

// AdminUsers are the ids of the users behind Tokens.
type AdminUsers struct {
	ReadOnlyAdmin string `json:"read_only_admin"`
	AppGroupAdmin string `json:"app_group_admin"`
	SuperAdmin    string `json:"super_admin"`
}

// Generated is what Generate built: the admin tokens, their users and the
// size of the org.
type Generated struct {
	// Profile and Seed are what the org was generated from.
	Profile string `json:"profile"`
	Seed    uint64 `json:"seed"`
	// Tokens are the admin users' API tokens; Admins are those users.
	Tokens Tokens     `json:"tokens"`
	Admins AdminUsers `json:"admins"`
	// Summary counts what was generated.
	Summary Summary `json:"summary"`
}

// Profiles lists the names Generate accepts.
func Profiles() []string { return []string{"small", "medium", "large"} }

// genProfile sizes one profile. memberships excludes the Everyone group,
// which holds every user on top; appUsers counts app users, direct and
// through groups.
type genProfile struct {
	users, groups, apps int
	memberships         int
	appUsers            int
	customRoles         int
}

func profileOf(name string) (genProfile, error) {
	switch name {
	case "small":
		return genProfile{users: 200, groups: 30, apps: 15, memberships: 1_000, appUsers: 400, customRoles: 2}, nil
	case "medium":
		return genProfile{users: 10_000, groups: 1_000, apps: 200, memberships: 90_000, appUsers: 20_000, customRoles: 4}, nil
	case "large":
		return genProfile{users: 100_000, groups: 10_000, apps: 1_000, memberships: 900_000, appUsers: 200_000, customRoles: 8}, nil
	}
	return genProfile{}, fmt.Errorf("org profile %q: use small, medium or large: %w", name, ErrInvalid)
}

// Generate fills an empty org with a realistic directory of the named
// profile ("small", "medium" or "large"): users with Okta's spread of
// statuses and real managers, heavy-tailed groups (Everyone, departments,
// admin groups, groups imported from apps), SSO and SCIM-provisioned apps
// assigned to users directly and through groups, standard admin roles on
// users and groups, and custom roles bound on resource sets. Every org also
// gets three admin users with the tokens of Generated.Tokens.
//
// The same seed gives the same org byte for byte: ids, timestamps and JSON.
// History is written at past times of the org's clock (the org's present is
// the clock's start) and without System Log events, as if the org had
// always been this way; the clock stands still while Generate runs, so call
// it before the org is served.
func Generate(org *Org, profile string, seed uint64) (*Generated, error) {
	p, err := profileOf(profile)
	if err != nil {
		return nil, err
	}
	org.mu.RLock()
	empty := org.users.len() == 0 && org.groups.len() == 0 && org.apps.len() == 0
	org.mu.RUnlock()
	if !empty {
		return nil, fmt.Errorf("generate %s org: the org is not empty: %w", profile, ErrInvalid)
	}
	c := org.clock
	resume := c.Now()
	defer c.unpin(resume)
	g := &generator{o: org, p: p, seed: seed, now: c.simStartTime()}
	g.orgCreated = g.now.AddDate(-3, 0, 0)
	steps := []struct {
		what string
		run  func() error
	}{
		{"admins", g.genAdmins},
		{"users", g.genUsers},
		{"apps", g.genApps},
		{"groups", g.genGroups},
		{"memberships", g.genMemberships},
		{"app assignments", g.genAppAssignments},
		{"admin roles", g.genRoles},
		{"custom roles", g.genCustomRoles},
		{"app statuses", g.genAppStatuses},
	}
	for _, s := range steps {
		if err := s.run(); err != nil {
			return nil, fmt.Errorf("generate %s org, %s: %w", profile, s.what, err)
		}
	}
	return &Generated{Profile: profile, Seed: seed, Tokens: g.tokens, Admins: g.adminIDs, Summary: org.Summary()}, nil
}

// pin stops the clock at t. The org's methods stamp every change with the
// clock's time, so pinning it is how the generator writes history at chosen
// past times through those same methods.
func (c *Clock) pin(t time.Time) {
	c.mu.Lock()
	c.fixed, c.now = true, t
	c.mu.Unlock()
}

// unpin lets a pinned clock run again from the simulated time at, so the
// time the generation took never shows on the org's clock.
func (c *Clock) unpin(at time.Time) {
	c.mu.Lock()
	c.fixed = false
	c.simStart, c.wallStart = at, time.Now()
	c.mu.Unlock()
}

func (c *Clock) simStartTime() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.simStart
}

// Random streams, one per phase, so that changing one phase of the
// generator leaves the others' choices (and so most of the org) unchanged.
const (
	streamTokens uint64 = iota + 1
	streamUsers
	streamApps
	streamGroups
	streamMembers
	streamAssign
	streamRoles
	streamCustom
	streamStatus
)

// generator holds the state of one Generate run.
type generator struct {
	o          *Org
	p          genProfile
	seed       uint64
	now        time.Time // the org's present: all history is before it
	orgCreated time.Time

	tokens   Tokens
	adminIDs AdminUsers

	everyone *Group
	// users are the regular users (not the three token admins) in creation order.
	users     []*User
	deptOf    []int     // index into departments, per regular user
	deptUsers [][]int32 // regular users per department

	apps      []*App
	appInfo   []appInfo
	depGroups []*Group // per department
	adminGrps []adminGroup
	// pool are the groups with heavy-tailed random membership (OKTA_GROUP and APP_GROUP).
	pool      []*Group
	poolHome  []int          // a department the group leans to, or -1
	groupSize map[string]int // members by group id, for app assignment budgets
}

type appInfo struct {
	scim, imports bool
	inactive      bool
}

type adminGroup struct {
	g    *Group
	role string
}

func (g *generator) rng(stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(g.seed, stream))
}

// between returns a time in [from, to), or from when to is not after it.
func between(r *rand.Rand, from, to time.Time) time.Time {
	d := to.Sub(from)
	if d <= 0 {
		return from
	}
	return from.Add(time.Duration(r.Int64N(int64(d))).Truncate(time.Millisecond))
}

func latest(ts ...time.Time) time.Time {
	m := ts[0]
	for _, t := range ts[1:] {
		if t.After(m) {
			m = t
		}
	}
	return m
}

func (g *generator) genAdmins() error {
	r := g.rng(streamTokens)
	g.o.clock.pin(g.orgCreated)
	var err error
	if g.everyone, err = g.o.CreateGroup(nil, GroupBuiltIn, "Everyone", "All users in your organization", "", g.orgCreated); err != nil {
		return err
	}
	specs := []struct {
		login, first, last string
		roles              []string
		user, token        *string
	}{
		{"super.admin@example.com", "Sam", "Rivera", []string{"SUPER_ADMIN"}, &g.adminIDs.SuperAdmin, &g.tokens.SuperAdmin},
		{"readonly.admin@example.com", "Riley", "Chen", []string{"READ_ONLY_ADMIN"}, &g.adminIDs.ReadOnlyAdmin, &g.tokens.ReadOnlyAdmin},
		{"appgroup.admin@example.com", "Alex", "Morgan", []string{"READ_ONLY_ADMIN", "APP_ADMIN", "USER_ADMIN"}, &g.adminIDs.AppGroupAdmin, &g.tokens.AppGroupAdmin},
	}
	for i, s := range specs {
		created := g.orgCreated.Add(time.Duration(i+1) * time.Hour)
		g.o.clock.pin(created)
		u, err := g.o.CreateUser(nil, UserProfile{
			Login: s.login, Email: s.login, FirstName: s.first, LastName: s.last, DisplayName: s.first + " " + s.last,
			Department: "IT", Title: "Okta Administrator", EmployeeNumber: fmt.Sprintf("%06d", 100000+i), UserType: "Employee",
		}, "ACTIVE", created)
		if err != nil {
			return err
		}
		if _, err := g.o.AddMember(nil, g.everyone.ID, u.ID); err != nil {
			return err
		}
		for _, role := range s.roles {
			if _, err := g.o.AssignRole(nil, "USER", u.ID, role, "", ""); err != nil {
				return fmt.Errorf("role %s for %s: %w", role, s.login, err)
			}
		}
		// Okta's tokens are 42 characters starting "00".
		tok := fmt.Sprintf("00%016x%016x%08x", r.Uint64(), r.Uint64(), r.Uint32())
		if err := g.o.AddToken(u.ID, tok); err != nil {
			return err
		}
		*s.user, *s.token = u.ID, tok
	}
	return nil
}

// departments and their weights in the workforce.
var departments = [...]struct {
	name   string
	weight float64
	titles []string
}{
	{"Engineering", 28, []string{"Software Engineer", "Senior Software Engineer", "Staff Engineer", "Site Reliability Engineer", "QA Engineer", "Data Engineer"}},
	{"Sales", 18, []string{"Account Executive", "Sales Development Representative", "Sales Engineer", "Regional Sales Manager"}},
	{"Customer Success", 10, []string{"Customer Success Manager", "Support Engineer", "Technical Account Manager"}},
	{"Marketing", 8, []string{"Marketing Manager", "Content Strategist", "Product Marketing Manager", "Designer"}},
	{"Operations", 8, []string{"Operations Analyst", "Program Manager", "Facilities Coordinator"}},
	{"Product", 6, []string{"Product Manager", "Senior Product Manager", "UX Researcher", "Product Designer"}},
	{"Finance", 6, []string{"Accountant", "Financial Analyst", "Payroll Specialist", "Controller"}},
	{"IT", 5, []string{"IT Support Specialist", "Systems Administrator", "Identity Engineer"}},
	{"Human Resources", 4, []string{"HR Business Partner", "Recruiter", "People Operations Specialist"}},
	{"Security", 3, []string{"Security Engineer", "Security Analyst", "GRC Analyst"}},
	{"Legal", 2, []string{"Counsel", "Paralegal", "Contracts Manager"}},
}

var firstNames = [...]string{
	"James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael", "Linda", "William", "Elizabeth",
	"David", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Charles", "Karen",
	"Wei", "Mei", "Hiroshi", "Yuki", "Raj", "Priya", "Arjun", "Ananya", "Mohammed", "Fatima",
	"Omar", "Aisha", "Carlos", "Maria", "Jose", "Sofia", "Luis", "Camila", "Diego", "Valentina",
	"Lukas", "Emma", "Noah", "Mia", "Liam", "Olivia", "Ethan", "Ava", "Lucas", "Chloe",
	"Olga", "Ivan", "Anna", "Dmitri", "Kwame", "Amara", "Chinedu", "Zanele", "Sven", "Ingrid",
	"Pierre", "Camille", "Giulia", "Marco", "Kenji", "Sakura", "Minh", "Linh", "Tariq", "Leila",
}

var lastNames = [...]string{
	"Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
	"Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin",
	"Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson",
	"Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Huang", "Tanaka", "Suzuki", "Sato",
	"Patel", "Shah", "Kumar", "Singh", "Gupta", "Khan", "Ali", "Hassan", "Okafor", "Mensah",
	"Muller", "Schmidt", "Schneider", "Fischer", "Rossi", "Russo", "Dubois", "Moreau", "Nguyen", "Tran",
	"Kowalski", "Novak", "Ivanov", "Petrov", "Johansson", "Larsen", "Silva", "Santos", "Costa", "Oliveira",
}

// genUsers creates the regular users: created over the org's three years
// in id order, each added to Everyone when created, with a department, a
// title and a manager (an earlier user of the department, up to the chief
// executive). A few recent hires are STAGED or PROVISIONED; ~3% became
// DEPROVISIONED, ~2% SUSPENDED and a few LOCKED_OUT or PASSWORD_EXPIRED
// after having been active; half of the active ones had a later profile
// change.
func (g *generator) genUsers() error {
	r := g.rng(streamUsers)
	n := g.p.users - 3
	created := make([]time.Time, n)
	for i := range created {
		created[i] = between(r, g.orgCreated.Add(24*time.Hour), g.now.Add(-time.Hour))
	}
	slices.SortFunc(created, func(a, b time.Time) int { return a.Compare(b) })
	var weights []float64
	for _, d := range departments {
		weights = append(weights, d.weight)
	}
	deptPick := newPicker(weights)
	managers := make([][]int, len(departments))
	g.deptUsers = make([][]int32, len(departments))
	g.users = make([]*User, 0, n)
	g.deptOf = make([]int, 0, n)
	logins := map[string]int{}
	for i := range n {
		first, last := firstNames[r.IntN(len(firstNames))], lastNames[r.IntN(len(lastNames))]
		domain, userType, empNo := "example.com", "Employee", fmt.Sprintf("%06d", 100003+i)
		switch x := r.Float64(); {
		case x < 0.08:
			domain, userType, empNo = "contractor.example.net", "Contractor", fmt.Sprintf("C%05d", i+1)
		case x < 0.20:
			domain = "corp.example.com"
		}
		base := strings.ToLower(first + "." + last)
		logins[base+"@"+domain]++
		login := base + "@" + domain
		if k := logins[login]; k > 1 {
			login = fmt.Sprintf("%s%d@%s", base, k, domain)
		}
		d := deptPick.pick(r)
		title := departments[d].titles[r.IntN(len(departments[d].titles))]
		manager := ""
		switch {
		case i == 0:
			d, title = ceoDepartment(), "Chief Executive Officer"
		case len(managers[d]) == 0:
			title = "VP, " + departments[d].name
			manager = g.users[0].ID
			managers[d] = append(managers[d], i)
		default:
			manager = g.users[managers[d][r.IntN(len(managers[d]))]].ID
			if r.Float64() < 0.08 {
				title = []string{"Manager, ", "Director, ", "Senior Manager, "}[r.IntN(3)] + departments[d].name
				managers[d] = append(managers[d], i)
			}
		}
		p := UserProfile{
			Login: login, Email: login, FirstName: first, LastName: last, DisplayName: first + " " + last,
			Department: departments[d].name, Title: title, ManagerID: manager, EmployeeNumber: empNo, UserType: userType,
		}
		status := "ACTIVE"
		switch x := r.Float64(); {
		case i >= n-n/20 && x < 0.1:
			status = "STAGED"
		case i >= n-n/20 && x < 0.2:
			status = "PROVISIONED"
		case i == 0:
		case x < 0.03:
			status = "DEPROVISIONED"
		case x < 0.05:
			status = "SUSPENDED"
		case x < 0.052:
			status = "LOCKED_OUT"
		case x < 0.054:
			status = "PASSWORD_EXPIRED"
		}
		// Statuses but STAGED and PROVISIONED are reached from ACTIVE later
		// on, so activated and statusChanged tell a true story.
		initial := status
		if status != "STAGED" && status != "PROVISIONED" {
			initial = "ACTIVE"
		}
		g.o.clock.pin(created[i])
		u, err := g.o.CreateUser(nil, p, initial, created[i])
		if err != nil {
			return err
		}
		if _, err := g.o.AddMember(nil, g.everyone.ID, u.ID); err != nil {
			return err
		}
		switch {
		case status != initial:
			g.o.clock.pin(between(r, created[i], g.now))
			if err := g.o.SetUserStatus(nil, u.ID, status); err != nil {
				return fmt.Errorf("user %s to %s: %w", u.ID, status, err)
			}
		case status == "ACTIVE" && r.Float64() < 0.5:
			// A later profile change: a new title, as a promotion or a
			// re-org makes, for all but the managers.
			if !strings.Contains(title, departments[d].name) && i != 0 {
				p.Title = departments[d].titles[r.IntN(len(departments[d].titles))]
			}
			g.o.clock.pin(between(r, created[i], g.now))
			if err := g.o.UpdateUserProfile(nil, u.ID, p); err != nil {
				return fmt.Errorf("user %s profile: %w", u.ID, err)
			}
		}
		g.users = append(g.users, u)
		g.deptOf = append(g.deptOf, d)
		g.deptUsers[d] = append(g.deptUsers[d], int32(i))
	}
	return nil
}

// ceoDepartment is where the chief executive sits: Operations.
func ceoDepartment() int {
	for i, d := range departments {
		if d.name == "Operations" {
			return i
		}
	}
	return 0
}

// appTemplate is a catalog integration.
type appTemplate struct {
	name, label, mode string
	scim, imports     bool
	custom            bool
}

// knownApps are well-known integrations; the first coreApps of them are in
// every org.
var knownApps = [...]appTemplate{
	{"google", "Google Workspace", "SAML_2_0", true, true, false},
	{"slack", "Slack", "SAML_2_0", true, false, false},
	{"zoomus", "Zoom", "SAML_2_0", true, false, false},
	{"workday", "Workday", "SAML_2_0", false, true, false},
	{"atlassian", "Atlassian Cloud", "SAML_2_0", true, false, false},
	{"oidc_client", "1Password", "OPENID_CONNECT", true, false, false},
	{"bookmark", "Okta Help Center", "BOOKMARK", false, false, false},
	{"office365", "Microsoft Office 365", "SAML_2_0", true, true, false},
	{"salesforce", "Salesforce.com", "SAML_2_0", true, true, false},
	{"box", "Box", "SAML_2_0", true, false, false},
	{"github_enterprise_cloud", "GitHub Enterprise Cloud - Organization", "SAML_2_0", true, false, false},
	{"servicenow_ud", "ServiceNow UD", "SAML_2_0", true, true, false},
	{"amazon_aws", "AWS Account Federation", "SAML_2_0", false, false, false},
	{"docusign", "DocuSign", "SAML_2_0", true, false, false},
	{"zendesk", "Zendesk", "SAML_2_0", true, false, false},
	{"dropbox_for_business", "Dropbox Business", "SAML_2_0", true, false, false},
	{"asana", "Asana", "SAML_2_0", true, false, false},
	{"smartsheet", "Smartsheet", "SAML_2_0", true, false, false},
	{"pagerduty", "PagerDuty", "SAML_2_0", false, false, false},
	{"datadog", "Datadog", "SAML_2_0", false, false, false},
	{"figma", "Figma", "SAML_2_0", true, false, false},
	{"notion", "Notion", "SAML_2_0", true, false, false},
	{"miro", "Miro", "SAML_2_0", false, false, false},
	{"tableau_online", "Tableau Cloud", "SAML_2_0", false, false, false},
	{"netsuite", "NetSuite", "SAML_2_0", false, false, false},
	{"concur", "SAP Concur", "SAML_2_0", false, false, false},
	{"bamboohr", "BambooHR", "SAML_2_0", false, true, false},
	{"greenhouse", "Greenhouse", "SAML_2_0", false, false, false},
	{"hubspot", "HubSpot", "SAML_2_0", false, false, false},
	{"jamfsoftwareserver", "Jamf Pro", "SAML_2_0", false, false, false},
	{"expensify", "Expensify", "SAML_2_0", false, false, false},
	{"adp_workforce_now", "ADP Workforce Now", "AUTO_LOGIN", false, false, false},
	{"template_swa", "LinkedIn", "BROWSER_PLUGIN", false, false, false},
	{"template_swa", "X", "BROWSER_PLUGIN", false, false, false},
	{"intercom", "Intercom", "AUTO_LOGIN", false, false, false},
	{"gotomeeting", "GoTo Meeting", "AUTO_LOGIN", false, false, false},
	{"template_sps", "FedEx Ship Manager", "SECURE_PASSWORD_STORE", false, false, false},
	{"template_basic_auth", "UPS Billing Center", "BASIC_AUTH", false, false, false},
}

const coreApps = 7

var appWords = [2][]string{
	{"Acme", "Internal", "Finance", "HR", "Payroll", "Data", "Build", "Deploy", "Analytics", "Support", "Vendor",
		"Partner", "Legacy", "Customer", "Billing", "Inventory", "Travel", "Benefits", "Wiki", "Metrics", "Sales", "Ops"},
	{"Portal", "Dashboard", "Console", "Tool", "Service", "Hub", "App", "Gateway", "Manager", "Reports", "Tracker", "Admin"},
}

// customModes are the sign-on modes of custom app integrations, by weight.
var customModes = [...]struct {
	mode, name string
	weight     float64
}{
	{"SAML_2_0", "", 45}, {"OPENID_CONNECT", "oidc_client", 20}, {"BOOKMARK", "bookmark", 12},
	{"AUTO_LOGIN", "", 10}, {"BROWSER_PLUGIN", "template_swa", 5},
	{"SECURE_PASSWORD_STORE", "template_sps", 3}, {"BASIC_AUTH", "template_basic_auth", 2},
	{"WS_FEDERATION", "template_wsfed", 2},
}

// scimFeatures are the provisioning features in Okta's usual order.
var scimFeatures = [...]struct {
	name string
	p    float64
}{
	{"PUSH_NEW_USERS", 1}, {"PUSH_PROFILE_UPDATES", 0.8}, {"PUSH_USER_DEACTIVATION", 0.9},
	{"REACTIVATE_USERS", 0.5}, {"PUSH_PASSWORD_UPDATES", 0.2}, {"GROUP_PUSH", 0.5},
}

// genApps creates the org's applications: the core integrations, then known
// ones and custom ones. SCIM apps have a provisioning connection and
// features; a few have a connection that was never turned on.
func (g *generator) genApps() error {
	r := g.rng(streamApps)
	known := knownApps
	rest := known[coreApps:]
	r.Shuffle(len(rest), func(i, j int) { rest[i], rest[j] = rest[j], rest[i] })
	templates := slices.Clone(known[:coreApps])
	var mw []float64
	for _, m := range customModes {
		mw = append(mw, m.weight)
	}
	modePick := newPicker(mw)
	labels := map[string]int{}
	for next := 0; len(templates) < g.p.apps; {
		// Catalog and custom integrations mix, as an org adds them over time.
		if next < len(rest) && r.Float64() < 0.5 {
			templates = append(templates, rest[next])
			next++
			continue
		}
		m := customModes[modePick.pick(r)]
		label := appWords[0][r.IntN(len(appWords[0]))] + " " + appWords[1][r.IntN(len(appWords[1]))]
		labels[label]++
		if k := labels[label]; k > 1 {
			label = fmt.Sprintf("%s %d", label, k)
		}
		name := m.name
		if name == "" {
			// Okta names a custom SAML or SWA app after the org and the label.
			name = "example_" + strings.ReplaceAll(strings.ToLower(label), " ", "") + "_1"
		}
		scim := m.mode == "SAML_2_0" && r.Float64() < 0.25
		templates = append(templates, appTemplate{name: name, label: label, mode: m.mode, scim: scim, imports: scim && r.Float64() < 0.2, custom: true})
	}
	created := make([]time.Time, len(templates))
	for i := range created {
		created[i] = between(r, g.orgCreated.Add(time.Hour), g.now.Add(-24*time.Hour))
	}
	slices.SortFunc(created, func(a, b time.Time) int { return a.Compare(b) })
	// The core apps come first, as in an org's first days.
	for i := range min(coreApps, len(created)) {
		created[i] = g.orgCreated.Add(time.Duration(i+2) * 24 * time.Hour)
	}
	anyInactive := false
	for i, t := range templates {
		spec := AppSpec{Name: t.name, Label: t.label, SignOnMode: t.mode, Status: "ACTIVE", Created: created[i]}
		info := appInfo{scim: t.scim, imports: t.imports}
		x := r.Float64()
		if t.scim && i >= coreApps && !t.custom && x >= 0.7 {
			// A catalog app able to provision, used for SSO only.
			t.scim, t.imports, info.scim, info.imports = false, false, false, false
		}
		switch {
		case t.scim && (x < 0.1 || (!t.custom && i >= coreApps && x >= 0.5)):
			// Provisioning offered but never turned on.
			spec.Connection = &AppConnection{Status: "DISABLED", AuthScheme: "TOKEN"}
			info.scim, info.imports = false, false
		case t.scim:
			scheme := "TOKEN"
			if r.Float64() < 0.2 {
				scheme = "OAUTH2"
			}
			spec.Connection = &AppConnection{Status: "ENABLED", AuthScheme: scheme}
			if t.imports {
				spec.Features = append(spec.Features, "IMPORT_NEW_USERS", "IMPORT_PROFILE_UPDATES")
			}
			for _, f := range scimFeatures {
				if r.Float64() < f.p {
					spec.Features = append(spec.Features, f.name)
				}
			}
			if t.custom {
				// Built on Okta's SCIM app template.
				spec.Features = append(spec.Features, "SCIM_PROVISIONING")
			}
		case t.imports:
			// An HR source: imports people, pushes nothing.
			spec.Connection = &AppConnection{Status: "ENABLED", AuthScheme: "TOKEN"}
			spec.Features = []string{"IMPORT_NEW_USERS", "IMPORT_PROFILE_UPDATES", "PROFILE_MASTERING"}
		}
		if i >= coreApps && r.Float64() < 0.1 {
			info.inactive, anyInactive = true, true
		}
		if !anyInactive && i == len(templates)-1 {
			info.inactive = true
		}
		g.o.clock.pin(created[i])
		a, err := g.o.CreateApp(nil, spec)
		if err != nil {
			return fmt.Errorf("app %q: %w", t.label, err)
		}
		g.apps = append(g.apps, a)
		g.appInfo = append(g.appInfo, info)
	}
	return nil
}

var (
	teams     = [...]string{"Platform", "Payments", "Identity", "Data", "Mobile", "Web", "Infrastructure", "SRE", "QA", "Analytics", "Growth", "Enterprise", "SMB", "Onboarding", "Tier 1", "Tier 2", "Billing", "Search", "Integrations", "Compliance"}
	regions   = [...]string{"NA", "EMEA", "APAC", "LATAM", "US East", "US West", "UK", "DACH", "ANZ", "Nordics", "France", "Japan", "India", "Brazil"}
	codenames = [...]string{"phoenix", "atlas", "orion", "zephyr", "nimbus", "falcon", "aurora", "summit", "lighthouse", "horizon", "quartz", "mercury", "nova", "ember", "cascade", "polaris", "tundra", "sierra"}
	accesses  = [...]string{"users", "admins", "readonly", "editors", "owners", "approvers", "viewers", "contributors"}
	cities    = [...]string{"San Francisco", "New York", "Austin", "Chicago", "Seattle", "Toronto", "London", "Dublin", "Berlin", "Paris", "Amsterdam", "Sydney", "Singapore", "Tokyo", "Bangalore", "Sao Paulo"}
)

// adminGroupRoles are the roles of the org's admin groups.
var adminGroupRoles = [...]struct{ name, role string }{
	{"Okta Admins - Help Desk", "HELP_DESK_ADMIN"},
	{"Okta Admins - Application Admins", "APP_ADMIN"},
	{"Okta Admins - Read Only", "READ_ONLY_ADMIN"},
	{"Okta Admins - Group Membership", "GROUP_MEMBERSHIP_ADMIN"},
	{"Okta Admins - Reporting", "REPORT_ADMIN"},
	{"Okta Admins - Org Admins", "ORG_ADMIN"},
}

// genGroups creates every group but Everyone: one per department, the admin
// groups, groups imported from apps (APP_GROUP, about a tenth) and the
// rest, in id order of their creation times.
func (g *generator) genGroups() error {
	r := g.rng(streamGroups)
	type spec struct {
		typ, name, desc string
		created         time.Time
		app             int // source app for APP_GROUP
		dept            int
		adminRole       string
	}
	var specs []spec
	names := map[string]int{}
	unique := func(name string) string {
		names[name]++
		if k := names[name]; k > 1 {
			return fmt.Sprintf("%s %d", name, k)
		}
		return name
	}
	for i, d := range departments {
		names[d.name]++
		specs = append(specs, spec{typ: GroupOkta, name: d.name, desc: "Everyone in " + d.name, dept: i, app: -1,
			created: g.orgCreated.Add(time.Duration(i+1) * 30 * time.Minute)})
	}
	nAdmin := max(2, g.p.groups/500)
	for i := range nAdmin {
		a := adminGroupRoles[i%len(adminGroupRoles)]
		name := a.name
		if i >= len(adminGroupRoles) {
			name += " " + regions[(i/len(adminGroupRoles)-1)%len(regions)]
		}
		specs = append(specs, spec{typ: GroupOkta, name: unique(name), desc: "Admins holding " + a.role, dept: -1, app: -1, adminRole: a.role,
			created: between(r, g.orgCreated.Add(24*time.Hour), g.now.Add(-24*time.Hour))})
	}
	var sources []int
	for i, info := range g.appInfo {
		if info.imports {
			sources = append(sources, i)
		}
	}
	rest := g.p.groups - 1 - len(specs)
	nAppGroups := 0
	if len(sources) > 0 {
		nAppGroups = max(1, g.p.groups/10)
	}
	for i := range rest {
		s := spec{typ: GroupOkta, dept: -1, app: -1,
			created: between(r, g.orgCreated.Add(24*time.Hour), g.now.Add(-time.Hour))}
		if i < nAppGroups {
			s.typ, s.app = GroupApp, sources[r.IntN(len(sources))]
			a := g.apps[s.app]
			s.created = between(r, a.Created, g.now.Add(-time.Hour))
			s.name = unique(appGroupName(a, groupName(r)))
			s.desc = "Imported from " + a.Label
		} else {
			s.name = unique(groupName(r))
			s.desc = groupDescription(r)
		}
		specs = append(specs, s)
	}
	slices.SortStableFunc(specs, func(a, b spec) int { return a.created.Compare(b.created) })
	g.depGroups = make([]*Group, len(departments))
	for _, s := range specs {
		source := ""
		if s.app >= 0 {
			source = g.apps[s.app].ID
		}
		g.o.clock.pin(s.created)
		grp, err := g.o.CreateGroup(nil, s.typ, s.name, s.desc, source, s.created)
		if err != nil {
			return fmt.Errorf("group %q: %w", s.name, err)
		}
		switch {
		case s.dept >= 0:
			g.depGroups[s.dept] = grp
		case s.adminRole != "":
			g.adminGrps = append(g.adminGrps, adminGroup{g: grp, role: s.adminRole})
		default:
			g.pool = append(g.pool, grp)
			home := -1
			if r.Float64() < 0.5 {
				home = r.IntN(len(departments))
			}
			g.poolHome = append(g.poolHome, home)
			if s.typ == GroupOkta && r.Float64() < 0.2 {
				// A later rename or new description moves lastUpdated.
				g.o.clock.pin(between(r, s.created, g.now))
				if err := g.o.UpdateGroup(nil, grp.ID, s.name, groupDescription(r)); err != nil {
					return fmt.Errorf("group %s profile: %w", grp.ID, err)
				}
			}
		}
	}
	return nil
}

func groupName(r *rand.Rand) string {
	switch r.IntN(6) {
	case 0:
		return departments[r.IntN(len(departments))].name + " - " + teams[r.IntN(len(teams))]
	case 1:
		return regions[r.IntN(len(regions))] + " " + departments[r.IntN(len(departments))].name
	case 2:
		return "app-" + strings.ToLower(strings.Fields(knownApps[r.IntN(len(knownApps))].label)[0]) + "-" + accesses[r.IntN(len(accesses))]
	case 3:
		return "proj-" + codenames[r.IntN(len(codenames))] + "-" + slug(teams[r.IntN(len(teams))])
	case 4:
		return cities[r.IntN(len(cities))] + " Office"
	}
	return "aws-" + []string{"prod", "staging", "dev", "sandbox"}[r.IntN(4)] + "-" + accesses[r.IntN(len(accesses))]
}

// appGroupName names a group imported from app a as that kind of app
// names its groups: mail addresses for Google, security groups for the
// Microsoft directory, slugs elsewhere.
func appGroupName(a *App, base string) string {
	switch a.Name {
	case "google":
		return slug(base) + "@example.com"
	case "office365":
		return "SG-" + slug(base)
	}
	return a.Name + "-" + slug(base)
}

// slug is s in lower case, runs of other characters than letters and
// digits turned into one '-'.
func slug(s string) string {
	var b strings.Builder
	for _, c := range strings.ToLower(s) {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			b.WriteRune(c)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
	}
	return strings.TrimSuffix(b.String(), "-")
}

func groupDescription(r *rand.Rand) string {
	return []string{"", "Managed by IT", "Access group", "Distribution list", "Project team", "Requested via ServiceNow", "Synced nightly"}[r.IntN(7)]
}

// genMemberships fills the groups: each department group with its people, the
// admin groups with a few active users, and the pool with heavy-tailed
// sizes (Zipf: a few groups with most of the org, most with a handful),
// half of them leaning to one department. Members of one group are added at
// one past time after all of them existed, so each group is a single step
// of history. The three token admins are in no group but Everyone, so that
// their tokens hold exactly the roles they were given.
func (g *generator) genMemberships() error {
	r := g.rng(streamMembers)
	n := len(g.users)
	g.groupSize = map[string]int{}
	total := 0
	for d, grp := range g.depGroups {
		if err := g.fill(r, grp, g.deptUsers[d]); err != nil {
			return err
		}
		total += len(g.deptUsers[d])
	}
	var active []int32
	for i, u := range g.users {
		if u.Status == "ACTIVE" {
			active = append(active, int32(i))
		}
	}
	all := newSampler(n)
	actives := &sampler{idx: active}
	for _, ag := range g.adminGrps {
		k := min(len(active), 2+r.IntN(10))
		if err := g.fill(r, ag.g, actives.sample(r, k)); err != nil {
			return err
		}
		total += k
	}
	sizes := zipfSizes(r, len(g.pool), g.p.memberships-total, max(1, n*6/10))
	byDept := make([]*sampler, len(departments))
	for d := range departments {
		byDept[d] = &sampler{idx: slices.Clone(g.deptUsers[d])}
	}
	for i, grp := range g.pool {
		k := min(sizes[i], n)
		var m []int32
		if h := g.poolHome[i]; h >= 0 && k <= len(g.deptUsers[h])/2 {
			m = byDept[h].sample(r, k)
		} else {
			m = all.sample(r, k)
		}
		if err := g.fill(r, grp, m); err != nil {
			return err
		}
	}
	return nil
}

// fill adds users (indexes into g.users) to grp at one time after the group
// and every one of them existed.
func (g *generator) fill(r *rand.Rand, grp *Group, members []int32) error {
	if len(members) == 0 {
		return nil
	}
	m := slices.Clone(members)
	slices.Sort(m)
	at := latest(grp.Created, g.users[m[len(m)-1]].Created)
	g.o.clock.pin(between(r, at, g.now))
	for _, i := range m {
		if _, err := g.o.AddMember(nil, grp.ID, g.users[i].ID); err != nil {
			return fmt.Errorf("member %s of %s: %w", g.users[i].ID, grp.ID, err)
		}
	}
	g.groupSize[grp.ID] = len(m)
	return nil
}

// zipfSizes returns n group sizes summing to about total, the i-th largest
// proportional to 1/i with some noise, each between 1 and limit, in random
// order.
func zipfSizes(r *rand.Rand, n, total, limit int) []int {
	if n == 0 {
		return nil
	}
	w := make([]float64, n)
	for i := range w {
		w[i] = math.Exp(r.NormFloat64()*0.3) / float64(i+1)
	}
	r.Shuffle(n, func(i, j int) { w[i], w[j] = w[j], w[i] })
	sizes := make([]int, n)
	capped := make([]bool, n)
	budget := float64(max(total, n))
	// Capping the biggest groups frees members for the others: spread them
	// again over the uncapped ones a few times.
	for range 5 {
		var sum float64
		left := budget
		for i := range w {
			if capped[i] {
				left -= float64(limit)
			} else {
				sum += w[i]
			}
		}
		if sum == 0 || left <= 0 {
			break
		}
		again := false
		for i := range w {
			if capped[i] {
				sizes[i] = limit
				continue
			}
			s := int(math.Round(left * w[i] / sum))
			if s >= limit {
				s, capped[i], again = limit, true, true
			}
			sizes[i] = max(1, s)
		}
		if !again {
			break
		}
	}
	return sizes
}

// genAppAssignments assigns apps to groups (about 60% of the app users) and
// then to users directly until the profile's number of app users is
// reached. App popularity is heavy-tailed, the core apps most popular.
func (g *generator) genAppAssignments() error {
	r := g.rng(streamAssign)
	if len(g.apps) == 0 {
		return nil
	}
	w := make([]float64, len(g.apps))
	for i := range w {
		w[i] = 1 / math.Pow(float64(i+1), 0.9)
	}
	rest := w[min(coreApps, len(w)):]
	r.Shuffle(len(rest), func(i, j int) { rest[i], rest[j] = rest[j], rest[i] })
	appPick := newPicker(w)

	var candidates []*Group
	candidates = append(candidates, g.depGroups...)
	candidates = append(candidates, g.pool...)
	budget := g.p.appUsers * 6 / 10
	priority := make([]int, len(g.apps))
	seen := map[[2]string]bool{}
	for attempts := 0; budget > 0 && attempts < 20*len(g.apps)+200; attempts++ {
		ai := appPick.pick(r)
		grp := candidates[r.IntN(len(candidates))]
		size := g.groupSize[grp.ID]
		a := g.apps[ai]
		if size == 0 || size > budget || seen[[2]string{a.ID, grp.ID}] {
			continue
		}
		seen[[2]string{a.ID, grp.ID}] = true
		g.o.clock.pin(between(r, latest(a.Created, grp.Created), g.now))
		if _, err := g.o.AssignGroupToApp(nil, a.ID, grp.ID, priority[ai], nil); err != nil {
			return fmt.Errorf("group %s to app %s: %w", grp.ID, a.ID, err)
		}
		priority[ai]++
		budget -= size
	}
	var assignable []int32
	for i, u := range g.users {
		if u.Status != "DEPROVISIONED" {
			assignable = append(assignable, int32(i))
		}
	}
	if len(assignable) == 0 {
		return nil
	}
	have := g.o.Summary().AppUsers
	direct := map[[2]int32]bool{}
	want := g.p.appUsers - have
	for attempts := 0; want > 0 && attempts < 3*g.p.appUsers; attempts++ {
		ai := appPick.pick(r)
		ui := assignable[r.IntN(len(assignable))]
		if direct[[2]int32{int32(ai), ui}] {
			continue
		}
		direct[[2]int32{int32(ai), ui}] = true
		a, u := g.apps[ai], g.users[ui]
		var profile map[string]any
		if g.appInfo[ai].scim {
			profile = map[string]any{"userName": u.Profile.Login, "email": u.Profile.Email, "givenName": u.Profile.FirstName, "familyName": u.Profile.LastName}
		}
		g.o.clock.pin(between(r, latest(a.Created, u.Created), g.now))
		added, err := g.o.AssignUserToApp(nil, a.ID, u.ID, profile)
		if err != nil {
			return fmt.Errorf("user %s to app %s: %w", u.ID, a.ID, err)
		}
		if added {
			want--
		}
	}
	return nil
}

// standardRoles are the roles given to individual admins, by weight.
var standardRoles = [...]struct {
	role   string
	weight float64
}{
	{"HELP_DESK_ADMIN", 30}, {"READ_ONLY_ADMIN", 20}, {"APP_ADMIN", 15}, {"USER_ADMIN", 10},
	{"GROUP_MEMBERSHIP_ADMIN", 10}, {"REPORT_ADMIN", 6}, {"ORG_ADMIN", 4}, {"API_ACCESS_MANAGEMENT_ADMIN", 3}, {"SUPER_ADMIN", 2},
}

// genRoles gives standard admin roles to a few active users (some two) and to
// the admin groups.
func (g *generator) genRoles() error {
	r := g.rng(streamRoles)
	var w []float64
	for _, s := range standardRoles {
		w = append(w, s.weight)
	}
	rolePick := newPicker(w)
	var active []int32
	for i, u := range g.users {
		if u.Status == "ACTIVE" {
			active = append(active, int32(i))
		}
	}
	n := min(len(active), max(3, len(g.users)/2000))
	for _, i := range (&sampler{idx: active}).sample(r, n) {
		u := g.users[i]
		for range 1 + r.IntN(2) {
			role := standardRoles[rolePick.pick(r)].role
			g.o.clock.pin(between(r, u.Created, g.now))
			if _, err := g.o.AssignRole(nil, "USER", u.ID, role, "", ""); err != nil {
				return fmt.Errorf("role %s for %s: %w", role, u.ID, err)
			}
		}
	}
	for _, ag := range g.adminGrps {
		g.o.clock.pin(between(r, ag.g.Created, g.now))
		if _, err := g.o.AssignRole(nil, "GROUP", ag.g.ID, ag.role, "", ""); err != nil {
			return fmt.Errorf("role %s for group %s: %w", ag.role, ag.g.ID, err)
		}
	}
	return nil
}

// customRoleTemplates are the custom roles an org defines, with what their
// resource set holds.
var customRoleTemplates = [...]struct {
	label, desc string
	perms       []string
	resources   string // "groups", "apps" or "all"
}{
	{"Department Group Manager", "Manages the membership of department groups", []string{"okta.groups.read", "okta.groups.members.manage"}, "groups"},
	{"App Assignment Manager", "Assigns people to business apps", []string{"okta.apps.read", "okta.apps.assignment.manage"}, "apps"},
	{"Access Auditor", "Reviews admin roles, users and groups", []string{"okta.iam.read", "okta.users.read", "okta.groups.read"}, "all"},
	{"Lifecycle Operator", "Activates, suspends and deactivates people", []string{"okta.users.read", "okta.users.lifecycle.manage"}, "all"},
	{"Group Viewer", "Reads groups and their members", []string{"okta.groups.read", "okta.users.read"}, "groups"},
	{"App Owner", "Manages business apps and their assignments", []string{"okta.apps.read", "okta.apps.manage"}, "apps"},
	{"Regional Help Desk", "Resets and unlocks people of one region", []string{"okta.users.read", "okta.users.manage"}, "groups"},
	{"IAM Administrator", "Manages custom roles and resource sets", []string{"okta.iam.read", "okta.iam.manage"}, "all"},
}

// genCustomRoles creates custom roles, one resource set for each, and binds
// each role on its set to one to three members (admins or admin groups).
func (g *generator) genCustomRoles() error {
	r := g.rng(streamCustom)
	var active []int32
	for i, u := range g.users {
		if u.Status == "ACTIVE" {
			active = append(active, int32(i))
		}
	}
	actives := &sampler{idx: active}
	for i := range min(g.p.customRoles, len(customRoleTemplates)) {
		t := customRoleTemplates[i]
		at := between(r, g.orgCreated.Add(30*24*time.Hour), g.now.Add(-48*time.Hour))
		g.o.clock.pin(at)
		role, err := g.o.CreateCustomRole(nil, t.label, t.desc, t.perms)
		if err != nil {
			return fmt.Errorf("custom role %q: %w", t.label, err)
		}
		var resources []string
		switch t.resources {
		case "groups":
			for _, d := range r.Perm(len(g.depGroups))[:min(3, len(g.depGroups))] {
				resources = append(resources, g.o.href("/api/v1/groups/"+g.depGroups[d].ID))
			}
		case "apps":
			for _, ai := range r.Perm(len(g.apps))[:min(4, len(g.apps))] {
				resources = append(resources, g.o.href("/api/v1/apps/"+g.apps[ai].ID))
			}
		default:
			resources = []string{g.o.href("/api/v1/users"), g.o.href("/api/v1/groups")}
		}
		g.o.clock.pin(at.Add(time.Hour))
		set, err := g.o.CreateResourceSet(nil, t.label+" Resources", "Resources of the "+t.label+" role", resources)
		if err != nil {
			return fmt.Errorf("resource set for %q: %w", t.label, err)
		}
		var members []string
		for _, ui := range actives.sample(r, min(len(active), 1+r.IntN(2))) {
			members = append(members, g.o.href("/api/v1/users/"+g.users[ui].ID))
		}
		if len(g.adminGrps) > 0 && r.Float64() < 0.5 {
			members = append(members, g.o.href("/api/v1/groups/"+g.adminGrps[r.IntN(len(g.adminGrps))].g.ID))
		}
		g.o.clock.pin(at.Add(2 * time.Hour))
		if err := g.o.BindResourceSet(nil, set.ID, role.ID, members); err != nil {
			return fmt.Errorf("bind %q on %s: %w", t.label, set.ID, err)
		}
	}
	return nil
}

// genAppStatuses deactivates about a tenth of the apps, after their assignments
// were made (Okta keeps the assignments of an inactive app).
func (g *generator) genAppStatuses() error {
	r := g.rng(streamStatus)
	for i, a := range g.apps {
		if !g.appInfo[i].inactive {
			continue
		}
		g.o.clock.pin(between(r, g.now.Add(-60*24*time.Hour), g.now.Add(-time.Hour)))
		if err := g.o.SetAppStatus(nil, a.ID, "INACTIVE"); err != nil {
			return fmt.Errorf("deactivate app %s: %w", a.ID, err)
		}
	}
	return nil
}

// picker draws indexes with probability proportional to their weights.
type picker struct{ cum []float64 }

func newPicker(w []float64) *picker {
	p := &picker{cum: make([]float64, len(w))}
	var s float64
	for i, x := range w {
		s += x
		p.cum[i] = s
	}
	return p
}

func (p *picker) pick(r *rand.Rand) int {
	x := r.Float64() * p.cum[len(p.cum)-1]
	i, _ := slices.BinarySearch(p.cum, x)
	return min(i, len(p.cum)-1)
}

// sampler draws samples without replacement by a partial Fisher-Yates
// shuffle of a permutation it keeps: O(k) per sample of k, however large
// the population.
type sampler struct{ idx []int32 }

func newSampler(n int) *sampler {
	s := &sampler{idx: make([]int32, n)}
	for i := range s.idx {
		s.idx[i] = int32(i)
	}
	return s
}

func (s *sampler) sample(r *rand.Rand, k int) []int32 {
	k = min(k, len(s.idx))
	for i := range k {
		j := i + r.IntN(len(s.idx)-i)
		s.idx[i], s.idx[j] = s.idx[j], s.idx[i]
	}
	return slices.Clone(s.idx[:k])
}

// Summary counts an org's objects.
type Summary struct {
	// Users and Groups count users and groups, also by status and type.
	Users         int            `json:"users"`
	UsersByStatus map[string]int `json:"usersByStatus"`
	Groups        int            `json:"groups"`
	GroupsByType  map[string]int `json:"groupsByType"`
	// Memberships counts group memberships, Everyone's included.
	Memberships int `json:"memberships"`
	// Apps counts apps, also by signOnMode.
	Apps       int            `json:"apps"`
	AppsByMode map[string]int `json:"appsBySignOnMode"`
	// InactiveApps and ProvisionedApps (connection ENABLED) are among Apps.
	InactiveApps    int `json:"inactiveApps"`
	ProvisionedApps int `json:"provisionedApps"`
	// AppUsers counts app users, direct or through groups; DirectAppUsers
	// those assigned directly; AppGroups the group assignments.
	AppUsers       int `json:"appUsers"`
	DirectAppUsers int `json:"directAppUsers"`
	AppGroups      int `json:"appGroups"`
	// RoleAssignments counts admin role assignments to users and groups.
	RoleAssignments int `json:"roleAssignments"`
	CustomRoles     int `json:"customRoles"`
	ResourceSets    int `json:"resourceSets"`
	// Tokens, LogEvents and EventHooks count API tokens, System Log
	// events and registered event hooks.
	Tokens     int `json:"tokens"`
	LogEvents  int `json:"logEvents"`
	EventHooks int `json:"eventHooks"`
}

// Summary counts the org's objects.
func (o *Org) Summary() Summary {
	o.mu.RLock()
	defer o.mu.RUnlock()
	s := Summary{
		Users: o.users.len(), UsersByStatus: map[string]int{}, Groups: o.groups.len(), GroupsByType: map[string]int{},
		Apps: o.apps.len(), AppsByMode: map[string]int{}, CustomRoles: o.customRoles.len(), ResourceSets: o.resourceSets.len(),
		Tokens: len(o.tokens), LogEvents: len(o.logs), EventHooks: o.hooks.len(),
	}
	o.users.each(func(_ string, u *User) bool { s.UsersByStatus[u.Status]++; return true })
	o.groups.each(func(_ string, g *Group) bool {
		s.GroupsByType[g.Type]++
		s.Memberships += g.members.len()
		return true
	})
	o.apps.each(func(_ string, a *App) bool {
		s.AppsByMode[a.SignOnMode]++
		if a.Status == "INACTIVE" {
			s.InactiveApps++
		}
		if a.Connection != nil && a.Connection.Status == "ENABLED" {
			s.ProvisionedApps++
		}
		s.AppUsers += a.users.len()
		s.AppGroups += a.groups.len()
		a.users.each(func(_ string, au *AppUser) bool {
			if au.Direct {
				s.DirectAppUsers++
			}
			return true
		})
		return true
	})
	for _, set := range o.roles {
		s.RoleAssignments += set.len()
	}
	return s
}
