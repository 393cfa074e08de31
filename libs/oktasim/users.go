package oktasim

func (s *Server) routesUsers() {}
