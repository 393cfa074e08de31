package oktasim

import (
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// OrgID is the simulated org's id. It is fixed, derived from nothing, so
// that ORNs (orn:okta:directory:<OrgID>:...) stay the same from run to run.
const OrgID = "00o00000000000000001"

// routesOrg serves GET /api/v1/org, the org's general settings. Any valid
// token may read them: every admin role, read-only included, sees the
// org's settings in Okta, and clients read it to learn the org id. Changing
// them (POST/PUT) is not simulated and answers 405.
func (s *Server) routesOrg() {
	s.handle("/api/v1/org", map[string]http.HandlerFunc{"GET": s.getOrgSettings})
}

// orgSettingView is the JSON shape of the org's settings (spec: OrgSetting).
// It has no expiresAt: Okta sends null for an org that does not expire, but
// its spec types the field as a non-nullable date-time, and an absent field
// reads the same as null to every client.
type orgSettingView struct {
	ID          string                    `json:"id"`
	Subdomain   string                    `json:"subdomain"`
	CompanyName string                    `json:"companyName"`
	Website     string                    `json:"website"`
	Status      string                    `json:"status"`
	Created     oktaTime                  `json:"created"`
	LastUpdated oktaTime                  `json:"lastUpdated"`
	Links       map[string]map[string]any `json:"_links"`
}

func (s *Server) getOrgSettings(w http.ResponseWriter, r *http.Request) {
	o := s.org
	created := s.orgCreated()
	href := func(p string) map[string]any { return map[string]any{"href": o.href(p)} }
	upload := href("/api/v1/org/logo")
	upload["hints"] = map[string]any{"allow": []string{"POST"}}
	writeRaw(w, http.StatusOK, render(orgSettingView{
		ID:          OrgID,
		Subdomain:   subdomainOf(o.base),
		CompanyName: "Okta Simulator",
		Website:     "https://www.example.com",
		Status:      "ACTIVE",
		Created:     oktaTime(created),
		LastUpdated: oktaTime(created),
		Links: map[string]map[string]any{
			"contacts":          href("/api/v1/org/contacts"),
			"preferences":       href("/api/v1/org/preferences"),
			"oktaCommunication": href("/api/v1/org/privacy/oktaCommunication"),
			"oktaSupport":       href("/api/v1/org/privacy/oktaSupport"),
			"uploadLogo":        upload,
		},
	}))
}

// orgCreated is when the org was created: when its first built-in group
// (Everyone, which Okta makes with the org) was, or else a fixed day, never
// later than the clock's now. Deriving it keeps it before every object of
// a generated history and the same from run to run.
func (s *Server) orgCreated() time.Time {
	o := s.org
	created := time.Date(2016, 3, 1, 0, 0, 0, 0, time.UTC)
	o.mu.RLock()
	o.groups.each(func(_ string, g *Group) bool {
		if g.Type == GroupBuiltIn {
			created = g.Created
			return false
		}
		return true
	})
	o.mu.RUnlock()
	if now := o.clock.Now(); now.Before(created) {
		created = now
	}
	return created
}

// subdomainOf is the org's subdomain: the first label of a host name such
// as acme.okta.com, or "oktasim" when the simulator is served at an IP
// address or a single-label host such as localhost.
func subdomainOf(base string) string {
	u, err := url.Parse(base)
	if err != nil {
		return "oktasim"
	}
	host := u.Hostname()
	if net.ParseIP(host) != nil || !strings.Contains(host, ".") {
		return "oktasim"
	}
	return strings.SplitN(host, ".", 2)[0]
}
