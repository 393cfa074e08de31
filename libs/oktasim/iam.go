package oktasim

func (s *Server) routesIAM() {}
