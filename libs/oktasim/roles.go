package oktasim

func (s *Server) routesRoles() {}
