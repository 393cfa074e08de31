package oktasim

func (s *Server) routesApps() {}

// membershipChanged keeps the app users of group-assigned apps in step with
// a group's membership; o.mu is held.
func (o *Org) membershipChanged(g *Group, u *User, added bool) {}
