package oktasim

func (s *Server) routesOrg() {}
