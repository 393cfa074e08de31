package oktasim

func (s *Server) routesGroups() {}
