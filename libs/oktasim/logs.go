package oktasim

func (s *Server) routesLogs() {}
